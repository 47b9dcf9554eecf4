"""The fine-tuned news model's parts: the encoder delta, calibration, evaluation of any backend, training."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from alphasignal.errors import BackendUnavailable, StructuredOutputError
from alphasignal.news.adapter import ADAPTER_FILE, EncoderAdapter
from alphasignal.news.calibration import expected_calibration_error, fit_temperature, nll, reliability, softmax
from alphasignal.news.encoder import MiniLMEncoder
from alphasignal.news.evaluation import BackendScorer, evaluate_scorer, sentiment_to_proba
from alphasignal.schemas import NewsSentiment

from .fakes import FakeBackend

KEY = "encoder.layer.0.attention.self.query.weight"


# ------------------------------------------------------------------ the delta


def _adapter(base_sha: str = "b" * 64, scale: float = 2.0) -> EncoderAdapter:
    rng = np.random.default_rng(0)
    return EncoderAdapter(
        lora={KEY: (rng.normal(size=(2, 4)).astype(np.float32), rng.normal(size=(3, 2)).astype(np.float32))},
        full={"encoder.layer.0.attention.self.query.bias": np.arange(3, dtype=np.float32)},
        scale=scale,
        base_sha256=base_sha,
    )


def test_adapter_merges_low_rank_delta_and_replaced_tensors():
    base = {KEY: np.ones((3, 4), np.float32), "encoder.layer.0.attention.self.query.bias": np.zeros(3, np.float32)}
    adapter = _adapter()
    merged = adapter.apply(base, "b" * 64)
    a, b = adapter.lora[KEY]
    np.testing.assert_allclose(merged[KEY], 1.0 + 2.0 * b @ a, rtol=1e-6)
    np.testing.assert_array_equal(merged["encoder.layer.0.attention.self.query.bias"], [0, 1, 2])
    np.testing.assert_array_equal(base[KEY], 1.0)  # the base weights are not modified


def test_adapter_refuses_another_base_and_misfit_shapes():
    base = {KEY: np.ones((3, 4), np.float32), "encoder.layer.0.attention.self.query.bias": np.zeros(3, np.float32)}
    with pytest.raises(BackendUnavailable, match="trained on MiniLM weights bbbbbbbbbbbb"):
        _adapter().apply(base, "c" * 64)
    with pytest.raises(BackendUnavailable, match="does not fit"):
        _adapter().apply({**base, KEY: np.ones((4, 4), np.float32)}, "b" * 64)
    with pytest.raises(BackendUnavailable, match="lack"):
        _adapter().apply({"encoder.layer.0.attention.self.query.bias": np.zeros(3)}, "b" * 64)


def test_adapter_round_trips_in_float16(tmp_path: Path):
    adapter = _adapter()
    loaded = EncoderAdapter.load(adapter.save(tmp_path / ADAPTER_FILE))
    assert loaded.base_sha256 == adapter.base_sha256 and loaded.scale == 2.0 and len(loaded.sha256) == 64
    np.testing.assert_allclose(loaded.lora[KEY][0], adapter.lora[KEY][0], atol=1e-3)
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(BackendUnavailable, match="unreadable"):
        EncoderAdapter.load(tmp_path / "bad.npz")


def test_packaged_delta_changes_the_encoder_and_records_its_base():
    from alphasignal.news.model import WEIGHTS_DIR

    adapter = EncoderAdapter.load(WEIGHTS_DIR / ADAPTER_FILE)
    plain = MiniLMEncoder.load()
    tuned = MiniLMEncoder.load(adapter=adapter)
    assert adapter.base_sha256 == plain.identity == tuned.identity
    assert tuned.adapter_sha256 == adapter.sha256 and plain.adapter_sha256 is None
    text = ["Operating profit rose to EUR 13.1 mn"]
    cosine = float(plain.encode(text)[0] @ tuned.encode(text)[0])
    assert 0.0 < cosine < 0.999  # fine-tuning moved the embedding, without destroying it


# ------------------------------------------------------------------ calibration


def test_temperature_recovers_an_overconfident_scale():
    rng = np.random.default_rng(1)
    n, true_t = 4000, 2.5
    logits = rng.normal(scale=3.0, size=(n, 3))
    labels = np.array([rng.choice(3, p=p) for p in softmax(logits / true_t)])
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(true_t, rel=0.15)
    assert nll(logits, labels, t) < nll(logits, labels, 1.0)
    assert expected_calibration_error(softmax(logits / t), labels) < 0.03
    assert expected_calibration_error(softmax(logits), labels) > 0.1


def test_ece_and_reliability_on_known_cases():
    probs = np.array([[0.9, 0.05, 0.05]] * 10)
    labels = np.array([0] * 9 + [1])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=1e-9)
    assert expected_calibration_error(probs, np.ones(10, dtype=int)) == pytest.approx(0.9)
    (row,) = reliability(probs, labels)
    assert row == {"bin": "0.8-0.9", "n": 10, "confidence": 0.9, "accuracy": 0.9}
    assert expected_calibration_error(np.zeros((0, 3)), np.zeros(0, dtype=int)) == 0.0


# ------------------------------------------------------------------ evaluating any backend


def _toy_csv(path: Path) -> Path:
    rows = [("Profit rose", "positive", 100, "test"), ("A loss", "negative", 50, "test"),
            ("Meeting held", "neutral", 100, "test"), ("Train row", "neutral", 100, "train")]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["sentence", "label", "max_agreement_level", "split"])
        writer.writerows(rows)
    return path


def test_sentiment_to_proba():
    probs = sentiment_to_proba(NewsSentiment(sentiment="BEARISH", intensity=0.7))
    np.testing.assert_allclose(probs, [0.7, 0.15, 0.15])


def test_backend_scorer_metrics_and_failures_count_as_wrong(tmp_path, settings):
    class ByKeyword(FakeBackend):
        async def analyze_news(self, news, config=None):
            text = news.items[0]
            if "loss" in text:
                raise StructuredOutputError("model output never validated as NewsSentiment")
            sentiment = "BULLISH" if "rose" in text else "NEUTRAL"
            return NewsSentiment(sentiment=sentiment, intensity=0.8)

    scorer = BackendScorer(ByKeyword(settings))
    metrics = evaluate_scorer(_toy_csv(tmp_path / "toy.csv"), scorer, extra={"backend": "fake:m"})
    assert metrics["backend"] == "fake:m" and metrics["model_id"] == "m"
    overall = metrics["test_all_agreement"]
    assert overall["n"] == 3 and overall["accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert overall["recall"]["negative"] == 0.0  # the failure is not a silent NEUTRAL
    assert metrics["failures"] == 1 and "never validated" in scorer.failures[0]
    assert overall["ece"] == pytest.approx(0.2, abs=1e-4)  # said 0.8, right every time it answered
    assert metrics["test_agreement_100"]["n"] == 2


def test_limit_takes_a_stratified_subset(tmp_path, settings):
    scorer = BackendScorer(FakeBackend(settings))
    metrics = evaluate_scorer(_toy_csv(tmp_path / "toy.csv"), scorer, limit=2)
    assert metrics["test_all_agreement"]["n"] == 2 and "stratified" in metrics["subset"]


# ------------------------------------------------------------------ training (torch)


@pytest.mark.slow
def test_torch_model_matches_the_numpy_encoder_after_export(tmp_path):
    """The torch training model, exported as a delta and merged in numpy, gives the same embeddings."""
    torch = pytest.importorskip("torch")
    from safetensors.numpy import load_file

    from alphasignal.news.encoder import packaged_model_dir
    from alphasignal.news.finetune import FinetuneConfig, _batches, build_model, export

    cfg = FinetuneConfig(rank=4, dropout=0.0)
    model_dir = packaged_model_dir()
    base = MiniLMEncoder.load()
    model = build_model(load_file(str(model_dir / "model.safetensors")), cfg)
    torch.manual_seed(0)
    with torch.no_grad():  # a non-zero delta, as after training
        for name, p in model.named_parameters():
            if "lora_b" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.02)
    adapter, _, _ = export([model.state_dict()], cfg, base.identity, {})
    tuned = MiniLMEncoder.load(adapter=EncoderAdapter.load(adapter.save(tmp_path / ADAPTER_FILE)))
    texts = ["Operating profit rose to EUR 13.1 mn", "The company swung to a net loss", "a"]
    ids = tuned.tokenize(texts)
    model.eval()
    for rows, tok, mask in _batches(ids, [0, 1, 2], 3):
        with torch.no_grad():
            expected = model.embed(tok, mask).numpy()
    got = tuned.encode(texts)
    assert (np.sum(expected * got, axis=1) > 0.9999).all()
    assert (np.sum(base.encode(texts) * got, axis=1) < 0.9999).all()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["lora", "full"])
def test_finetune_reads_only_train_rows_and_saves_a_loadable_model(tmp_path, method):
    pytest.importorskip("torch")
    from alphasignal.news.finetune import FinetuneConfig, finetune
    from alphasignal.news.model import HEAD_FILE, SentimentModel

    rows = []
    for i in range(8):
        rows += [(f"Profit rose {i} %", "positive", 100, "train"), (f"Net loss of {i} mn", "negative", 75, "train"),
                 (f"Annual meeting no. {i}", "neutral", 100, "train")]
    rows.append(("SECRET TEST ROW", "positive", 100, "test"))
    data = tmp_path / "toy.csv"
    with open(data, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([("sentence", "label", "max_agreement_level", "split"), *rows])
    cfg = FinetuneConfig(method=method, epochs=1, rank=2, batch_size=8, val_fraction=0.25, threads=1, soup=2)
    logs: list[str] = []
    record = finetune(data, tmp_path / "out", cfg, log=logs.append)
    assert record["n_train"] + record["n_validation"] == 24
    assert not any("SECRET" in line for line in logs)
    assert (tmp_path / "out" / ADAPTER_FILE).is_file() and (tmp_path / "out" / HEAD_FILE).is_file()
    model = SentimentModel.load(tmp_path / "out")
    assert model.encoder.adapter_sha256 == record["adapter_sha256"]
    assert model.head.temperature == record["temperature"] > 0
    saved = EncoderAdapter.load(tmp_path / "out" / ADAPTER_FILE)
    assert saved.meta["method"] == method
    assert record["adapter_bytes"] == (tmp_path / "out" / ADAPTER_FILE).stat().st_size
    # LoRA: k models' rank-2 factors average exactly at rank 2k; full: the averaged delta is cut to rank 2
    k = saved.meta["snapshots_averaged"]
    assert {a.shape[0] for a, _ in saved.lora.values()} == ({2 * k} if method == "lora" else {2})
    probs = model.predict_proba(["Profit rose 3 %"])
    assert probs.shape == (1, 3) and abs(probs.sum() - 1) < 1e-9


def test_head_refuses_a_missing_or_different_delta(tmp_path):
    import shutil

    from alphasignal.news.model import HEAD_FILE, WEIGHTS_DIR, SentimentModel

    shutil.copy(WEIGHTS_DIR / HEAD_FILE, tmp_path / HEAD_FILE)
    with pytest.raises(BackendUnavailable, match="adapter.npz, which is missing"):
        SentimentModel.load(tmp_path)
    other = EncoderAdapter.load(WEIGHTS_DIR / ADAPTER_FILE)
    other = EncoderAdapter(lora=other.lora, full=other.full, scale=other.scale * 0.5, base_sha256=other.base_sha256)
    other.save(tmp_path / ADAPTER_FILE)
    with pytest.raises(BackendUnavailable, match="expects encoder delta"):
        SentimentModel.load(tmp_path)


# ------------------------------------------------------------------ full fine-tuning


def test_low_rank_delta_is_exact_below_its_rank_and_best_above():
    from alphasignal.news.adapter import low_rank_delta

    rng = np.random.default_rng(0)
    delta = rng.normal(size=(6, 3)) @ rng.normal(size=(3, 5))  # rank 3
    a, b = low_rank_delta(delta, 7)
    assert a.shape == (5, 5) and b.shape == (6, 5)  # no more factors than the matrix has singular values
    np.testing.assert_allclose(b @ a, delta, atol=1e-5)
    a, b = low_rank_delta(delta, 3)
    np.testing.assert_allclose(b @ a, delta, atol=1e-5)
    a, b = low_rank_delta(delta, 1)
    s = np.linalg.svd(delta, compute_uv=False)
    assert np.linalg.norm(delta - b @ a) == pytest.approx(np.sqrt(np.sum(s[1:] ** 2)), rel=1e-4)


def test_config_errors_say_what_to_use():
    pytest.importorskip("torch")
    from alphasignal.errors import InputError
    from alphasignal.news.finetune import FinetuneConfig, build_model, export

    with pytest.raises(InputError, match="use one of lora, full"):
        build_model({}, FinetuneConfig(method="qlora"))
    with pytest.raises(InputError, match="use one of cosine, linear"):
        build_model({}, FinetuneConfig(schedule="step"))
    with pytest.raises(InputError, match="needs the base weights"):
        export([{}], FinetuneConfig(method="full"), "b" * 64, {})


def _tiny_weights(layers: int = 2, hidden: int = 24, ffn: int = 48, vocab: int = 10) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    w = {
        "embeddings.word_embeddings.weight": rng.normal(size=(vocab, hidden)),
        "embeddings.position_embeddings.weight": rng.normal(size=(16, hidden)),
        "embeddings.token_type_embeddings.weight": rng.normal(size=(2, hidden)),
        "embeddings.LayerNorm.weight": np.ones(hidden), "embeddings.LayerNorm.bias": np.zeros(hidden),
    }
    shapes = {"attention.self.query": (hidden, hidden), "attention.self.key": (hidden, hidden),
              "attention.self.value": (hidden, hidden), "attention.output.dense": (hidden, hidden),
              "intermediate.dense": (ffn, hidden), "output.dense": (hidden, ffn)}
    for i in range(layers):
        for name, shape in shapes.items():
            w[f"encoder.layer.{i}.{name}.weight"] = rng.normal(size=shape) * 0.1
            w[f"encoder.layer.{i}.{name}.bias"] = np.zeros(shape[0])
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[f"encoder.layer.{i}.{ln}.weight"], w[f"encoder.layer.{i}.{ln}.bias"] = np.ones(hidden), np.zeros(hidden)
    return {k: v.astype(np.float32) for k, v in w.items()}


def test_full_finetuning_trains_every_matrix_with_layer_decay_and_exports_what_it_learned():
    torch = pytest.importorskip("torch")
    from alphasignal.news.finetune import FinetuneConfig, _param_groups, build_model, export, load_merged

    weights = _tiny_weights()
    cfg = FinetuneConfig(method="full", rank=3, lr=1e-4, layer_decay=0.5, head_lr=1e-3, dropout=0.0)
    model = build_model(weights, cfg, heads=4)
    lrs = {id(p): g["lr"] for g in _param_groups(model, cfg) for p in g["params"]}
    named = dict(model.named_parameters())
    assert lrs[id(named["layers.1.lin.intermediate_dense.weight"])] == pytest.approx(1e-4)  # top layer
    assert lrs[id(named["layers.0.lin.intermediate_dense.weight"])] == pytest.approx(5e-5)
    assert lrs[id(named["ln.weight"])] == pytest.approx(2.5e-5)  # the embedding LayerNorm is deepest
    assert lrs[id(named["head.weight"])] == pytest.approx(1e-3)
    assert not any("lora" in n for n in named)
    rng = np.random.default_rng(1)
    with torch.no_grad():  # a rank-2 change to every matrix: the rank-3 export keeps it exactly
        for name, p in named.items():
            if ".lin." in name and name.endswith(".weight"):
                change = rng.normal(size=(p.shape[0], 2)) @ rng.normal(size=(2, p.shape[1])) * 0.05
                p.add_(torch.from_numpy(change.astype(np.float32)))
    ids, mask = torch.tensor([[1, 2, 3, 4], [5, 6, 0, 0]]), torch.tensor([[1.0, 1, 1, 1], [1, 1, 0, 0]])
    model.eval()
    with torch.no_grad():
        expected = model(ids, mask).numpy()
    adapter, w, b = export([model.state_dict()], cfg, "b" * 64, {}, base_weights=weights)
    assert adapter.scale == 1.0 and all(a.shape[0] == 3 for a, _ in adapter.lora.values())
    fresh = build_model(weights, cfg, heads=4)
    fresh.eval()
    load_merged(fresh, adapter.apply(weights, "b" * 64), w, b)
    with torch.no_grad():
        got = fresh(ids, mask).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)
