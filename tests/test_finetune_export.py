"""``alphasignal export`` on the tiny Gemma-3 VLM: the converter against transformers, adapter merge, the smoke test.

The numerical tests hold our GGUF converter to the model it converts: llama.cpp's
logits on the text GGUF equal transformers' logits on the checkpoint, llama.cpp's
tokenizer gives the same ids, and mtmd's image embeddings equal
``get_image_features``. The tiny model is first given non-trivial norm and
projector weights (transformers initialises Gemma's RMSNorm weights and the
projector to zero, which would let a missing ``+1`` or a transposed projection
go unnoticed), then trained for a few steps to answer one fixed HOLD signal, so
that the smoke test can check the trained behaviour survives merge, conversion,
quantization and our ``llamacpp`` backend — and that a wrong projector is refused.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import hashlib
import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

from alphasignal.errors import BackendUnavailable, ExportError

pytestmark = pytest.mark.integration

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
llama_cpp = pytest.importorskip("llama_cpp")

ANSWER = '{"action": "HOLD", "confidence": 0, "trend": "sideways"}'
# the end of the chart prompt as our llamacpp backend renders it: what the trained answer follows
PROMPT_TAIL = "Answer with the JSON object described by this schema.<end_of_turn>\n<start_of_turn>model\n"
LOGIT_TOL = 1e-3  # relative to the largest logit; f32 GGUF and KV cache, but ggml's GELU uses an f16 table
DEMO_CHART = Path(__file__).resolve().parents[1] / "alphasignal" / "data" / "demo_chart.png"


# ----------------------------------------------------------------------------------------------- fixtures


def _copy_processor(src: Path, dst: Path) -> None:
    from transformers import AutoProcessor

    AutoProcessor.from_pretrained(src).save_pretrained(dst)


def _vary(src: Path, dst: Path) -> Path:
    """The tiny model with random RMSNorm and projector weights (they start at zero)."""
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(src)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ("norm" in name and "vision_tower" not in name) or "mm_input_projection" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.3)
    model.save_pretrained(dst)
    _copy_processor(src, dst)
    return dst


def _train_answer(src: Path, dst: Path, steps: int = 30) -> Path:
    """Full fine-tune a few steps so the model answers ANSWER after the chart prompt's last turn."""
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(src)
    model = AutoModelForImageTextToText.from_pretrained(src)
    prompt = tok(PROMPT_TAIL, add_special_tokens=False).input_ids
    answer = tok(ANSWER + "<end_of_turn>", add_special_tokens=False).input_ids
    ids = torch.tensor([prompt + answer])
    labels = ids.clone()
    labels[:, : len(prompt)] = -100
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-2)
    for _ in range(steps):
        model(input_ids=ids, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()
    model.save_pretrained(dst)
    _copy_processor(src, dst)
    return dst


def _make_run(base: Path, run: Path) -> Path:
    """A run folder as training writes it: a LoRA adapter with non-zero B (so merging changes the model)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(base)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=r".*language_model.*\.(q_proj|v_proj|up_proj|down_proj)")
    with warnings.catch_warnings():  # peft reads a property transformers 5.2x deprecates
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        model = get_peft_model(model, config)
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.02)
    model.save_pretrained(run / "adapter")
    _copy_processor(base, run / "adapter")
    summary = {"base_model": str(base), "base_path": str(base), "method": "cpu-lora", "steps": 0}
    (run / "summary.json").write_text(json.dumps(summary))
    return run


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from alphasignal.finetune.tiny import build_tiny_vlm

    root = tmp_path_factory.mktemp("tiny")
    return _vary(build_tiny_vlm(root / "random"), root / "varied")


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory):
    return _train_answer(tiny, tmp_path_factory.mktemp("trained") / "ckpt")


@pytest.fixture(scope="module")
def run_dir(trained, tmp_path_factory):
    return _make_run(trained, tmp_path_factory.mktemp("runs") / "chart-lora")


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    from alphasignal.finetune.export import export_run

    return export_run(run_dir, tmp_path_factory.mktemp("export") / "out", progress=False)


@pytest.fixture(scope="module")
def converted(tiny, tmp_path_factory):
    from alphasignal.finetune.gguf_gemma3 import convert_gemma3

    out = tmp_path_factory.mktemp("gguf")
    return convert_gemma3(tiny, out / "tiny.f32.gguf", out / "mmproj-tiny.gguf", outtype="f32", name="tiny")


# ----------------------------------------------------------------------------------------------- helpers


def _hf_logits(checkpoint: Path, ids: list[int]) -> np.ndarray:
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(checkpoint).eval()
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0].float().numpy()


def _llama(path: Path, **kwargs):
    # f32 KV cache: the comparison is about the converted weights, not cache precision
    return llama_cpp.Llama(model_path=str(path), n_ctx=512, n_threads=2, verbose=False,
                           type_k=0, type_v=0, **kwargs)


def _gguf_logits(path: Path, ids: list[int]) -> np.ndarray:
    llm = _llama(path, logits_all=True)
    try:
        llm.eval(ids)
        return np.array(llm.scores[: len(ids)])
    finally:
        llm.close()


def _prompt_ids(checkpoint: Path) -> list[int]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(checkpoint)
    text = "<bos><start_of_turn>user\nClassify the AAPL chart: 182.50 -> 191.00?<end_of_turn>\n<start_of_turn>model\n"
    return tok(text + '{"action": "BUY"', add_special_tokens=False).input_ids


def _assert_same_logits(hf: np.ndarray, gguf: np.ndarray) -> None:
    assert hf.shape == gguf.shape
    diff = np.abs(hf - gguf).max()
    assert diff < LOGIT_TOL * (1 + np.abs(hf).max()), (diff, np.abs(hf).max())
    assert hf.std() > 50 * diff  # the logits carry signal well above the tolerance
    assert (hf.argmax(-1) == gguf.argmax(-1)).all()


def _mtmd_image_embeddings(model: Path, mmproj: Path, rgb: np.ndarray) -> np.ndarray:
    """Encode one RGB image with llama.cpp's mtmd and return its (tokens, n_embd) embeddings."""
    from llama_cpp import mtmd_cpp

    llm = _llama(model)
    params = mtmd_cpp.mtmd_context_params_default()
    params.use_gpu, params.n_threads = False, 2
    ctx = mtmd_cpp.mtmd_init_from_file(str(mmproj).encode(), llm.model, params)
    assert ctx, "mtmd could not load the projector"
    data = rgb.astype(np.uint8).tobytes()
    bitmap = mtmd_cpp.mtmd_bitmap_init(rgb.shape[1], rgb.shape[0], (ctypes.c_uint8 * len(data)).from_buffer_copy(data))
    chunks = mtmd_cpp.mtmd_input_chunks_init()
    try:
        text = mtmd_cpp.mtmd_input_text()
        marker = mtmd_cpp.mtmd_default_marker()
        text.text, text.text_len, text.add_special, text.parse_special = marker, len(marker), False, True
        bitmaps = (mtmd_cpp.mtmd_bitmap_p_ctypes * 1)(bitmap)
        assert mtmd_cpp.mtmd_tokenize(ctx, chunks, ctypes.byref(text), bitmaps, 1) == 0
        for i in range(mtmd_cpp.mtmd_input_chunks_size(chunks)):
            chunk = mtmd_cpp.mtmd_input_chunks_get(chunks, i)
            if mtmd_cpp.mtmd_input_chunk_get_type(chunk) == mtmd_cpp.MTMD_INPUT_CHUNK_TYPE_IMAGE:
                n = mtmd_cpp.mtmd_input_chunk_get_n_tokens(chunk)
                assert mtmd_cpp.mtmd_encode_chunk(ctx, chunk) == 0
                out = mtmd_cpp.mtmd_get_output_embd(ctx)
                return np.ctypeslib.as_array(out, shape=(n * llm.n_embd(),)).reshape(n, -1).copy()
        raise AssertionError("mtmd produced no image chunk")
    finally:
        mtmd_cpp.mtmd_input_chunks_free(chunks)
        mtmd_cpp.mtmd_bitmap_free(bitmap)
        mtmd_cpp.mtmd_free(ctx)
        llm.close()


# ----------------------------------------------------------------------------------------------- (a) converter


def test_text_gguf_logits_match_transformers(tiny, converted):
    ids = _prompt_ids(tiny)
    _assert_same_logits(_hf_logits(tiny, ids), _gguf_logits(converted[0], ids))


def test_tokenizer_ids_match_transformers(tiny, converted):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    messages = [{"role": "system", "content": "You read charts."},
                {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "AAPL 182.50, up 3%?"}]},
                {"role": "assistant", "content": ANSWER}]
    text = tok.apply_chat_template(messages, tokenize=False)
    assert "<start_of_turn>" in text and "<start_of_image>" in text
    llm = _llama(converted[0], vocab_only=True)
    try:
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == tok(text, add_special_tokens=False).input_ids
        # add_bos follows the tokenizer (this one adds none; its chat template writes <bos> itself)
        assert llm.tokenize(b"hello", add_bos=True, special=True) == tok("hello").input_ids
    finally:
        llm.close()


def _sentencepiece_style_tokenizer(folder: Path):
    """A Gemma-style tokenizer.json: BPE over "▁"-joined text with <0xNN> byte fallback, no pre-tokenizer."""
    from tokenizers import Tokenizer, decoders, models, normalizers, trainers
    from transformers import PreTrainedTokenizerFast

    from alphasignal.finetune.tiny import SPECIAL_TOKENS, tokenizer_corpus

    tok = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>", fuse_unk=True))
    tok.normalizer = normalizers.Replace(" ", "\u2581")
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
    pieces = list(SPECIAL_TOKENS) + [f"<0x{i:02X}>" for i in range(256)]
    trainer = trainers.BpeTrainer(vocab_size=900, special_tokens=pieces, show_progress=False)
    tok.train_from_iterator([t.replace(" ", "\u2581") for t in tokenizer_corpus()], trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                   unk_token="<unk>", additional_special_tokens=list(SPECIAL_TOKENS[4:]))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).unlink()
    fast.save_pretrained(folder)
    return fast


def test_sentencepiece_style_tokenizer_matches(tiny, tmp_path):
    import shutil

    from alphasignal.backends.tiny_mmproj import read_gguf_metadata
    from alphasignal.finetune.gguf_gemma3 import GemmaCheckpoint, write_text_gguf

    folder = Path(shutil.copytree(tiny, tmp_path / "spm"))
    tok = _sentencepiece_style_tokenizer(folder)
    path = write_text_gguf(GemmaCheckpoint.open(folder), tmp_path / "spm.gguf", outtype="f32")
    meta = read_gguf_metadata(path, ["tokenizer.ggml.model", "tokenizer.ggml.add_space_prefix"])
    assert meta == {"tokenizer.ggml.model": "llama", "tokenizer.ggml.add_space_prefix": False}
    llm = _llama(path, vocab_only=True)
    try:
        for text in ("Analyse this candlestick chart of AAPL.", '{"action":"BUY","confidence":0.72}',
                     "<start_of_turn>user\nHello  world 182.50 \u00fcn\u00efcode \u2713<end_of_turn>\n",
                     " leading space", "tabs\tand\nnewlines"):
            ids = tok(text, add_special_tokens=False).input_ids
            assert llm.tokenize(text.encode(), add_bos=False, special=True) == ids, text
    finally:
        llm.close()


def test_image_embeddings_match_transformers(tiny, converted):
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from PIL import Image

    rgb = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)  # the model's size: no resize
    processor = AutoProcessor.from_pretrained(tiny)
    model = AutoModelForImageTextToText.from_pretrained(tiny).eval()
    pixels = processor.image_processor(Image.fromarray(rgb), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        features = model.get_image_features(pixel_values=pixels)
    hf = getattr(features, "pooler_output", features)
    hf = (hf[0] if isinstance(hf, (list, tuple)) else hf).reshape(16, -1).numpy()
    ours = _mtmd_image_embeddings(converted[0], converted[1], rgb)
    assert ours.shape == hf.shape == (16, 64)
    assert hf.std() > 1.0
    np.testing.assert_allclose(ours, hf, atol=2e-2 * hf.std())


def test_gguf_metadata(tiny, converted):
    import gguf

    from alphasignal.backends.tiny_mmproj import read_gguf_metadata
    from alphasignal.finetune.gguf_gemma3 import checkpoint_tensors, load_tensor

    text, mmproj = converted
    meta = read_gguf_metadata(text, ["general.architecture", "tokenizer.ggml.model", "tokenizer.ggml.pre",
                                     "tokenizer.chat_template", "gemma3.attention.sliding_window",
                                     "tokenizer.ggml.eot_token_id", "gemma3.embedding_length"])
    assert meta["general.architecture"] == "gemma3"
    assert (meta["tokenizer.ggml.model"], meta["tokenizer.ggml.pre"]) == ("gpt2", "gpt-2")
    assert meta["tokenizer.chat_template"] == (tiny / "chat_template.jinja").read_text()
    assert meta["gemma3.attention.sliding_window"] == 512 and meta["gemma3.embedding_length"] == 64
    proj = read_gguf_metadata(mmproj, ["general.type", "clip.projector_type", "clip.vision.projector.scale_factor",
                                       "clip.vision.projection_dim"])
    assert proj == {"general.type": "mmproj", "clip.projector_type": "gemma3",
                    "clip.vision.projector.scale_factor": 2, "clip.vision.projection_dim": 64}
    # Gemma's RMSNorm multiplies by (1 + w): stored as w + 1, in the text model and the projector alike
    src = checkpoint_tensors(tiny)
    stored = {t.name: np.array(t.data) for t in gguf.GGUFReader(str(text)).tensors}
    hf_norm = load_tensor(src["language_model.model.layers.0.self_attn.q_norm.weight"])
    np.testing.assert_allclose(stored["blk.0.attn_q_norm.weight"], hf_norm + 1)
    stored = {t.name: np.array(t.data) for t in gguf.GGUFReader(str(mmproj)).tensors}
    np.testing.assert_allclose(stored["mm.soft_emb_norm.weight"],
                               load_tensor(src["multi_modal_projector.mm_soft_emb_norm.weight"]) + 1)


# ----------------------------------------------------------------------------------------------- (b) merge


def test_merged_adapter_is_in_the_gguf(exported, trained):
    assert exported.merged is not None and (exported.merged / "config.json").is_file()
    ids = _prompt_ids(exported.merged)
    merged = _hf_logits(exported.merged, ids)
    assert np.abs(merged - _hf_logits(trained, ids)).max() > 0.05  # the adapter changed the model
    _assert_same_logits(merged, _gguf_logits(exported.full_precision, ids))


# ----------------------------------------------------------------------------------------------- (c) smoke


def _settings(mmproj: Path):
    from alphasignal.config import Settings

    return Settings(pipeline={"max_tokens": 96, "max_retries": 0},
                    backends={"llamacpp_mmproj": str(mmproj), "llamacpp_n_ctx": 2048})


def _chart():
    from alphasignal.schemas import ChartInput

    return ChartInput(image=DEMO_CHART.read_bytes(), mime="image/png", ticker="AAPL")


def test_exported_model_answers_through_llamacpp_backend(exported):
    from alphasignal.backends.base import get_backend
    from alphasignal.schemas import ChartSignal

    assert exported.quant == "q4_k_m" and exported.model.name == "chart-lora.q4_k_m.gguf"
    backend = get_backend(exported.llamacpp_spec, _settings(exported.mmproj))
    try:
        assert backend.capabilities.vision
        signal = asyncio.run(backend.analyze_chart(_chart()))
    finally:
        backend.close()
    assert isinstance(signal, ChartSignal)
    assert (signal.action, signal.trend, signal.confidence) == ("HOLD", "sideways", 0.0)  # the trained answer


def test_wrong_projector_is_refused(exported, tmp_path):
    from alphasignal.backends.base import get_backend
    from alphasignal.backends.tiny_mmproj import write_tiny_mmproj
    from alphasignal.finetune.gguf_tools import check_pair

    bad = write_tiny_mmproj(tmp_path / "mmproj-other.gguf", text_n_embd=640)  # built for a 640-wide model
    backend = get_backend(exported.llamacpp_spec, _settings(bad))
    try:
        match = "outputs 640-wide embeddings but the model's embedding size is 64"
        with pytest.raises(BackendUnavailable, match=match):
            asyncio.run(backend.analyze_chart(_chart()))
    finally:
        backend.close()
    with pytest.raises(ExportError, match="cannot load mmproj-other.gguf"):
        check_pair(exported.model, bad)


# ----------------------------------------------------------------------------------------------- (d) files


def test_modelfile_and_export_json(exported):
    out = exported.out_dir
    lines = (out / "Modelfile").read_text().splitlines()
    froms = [line.split(" ", 1)[1] for line in lines if line.startswith("FROM ")]
    assert froms == ["./chart-lora.q4_k_m.gguf", "./mmproj-chart-lora.gguf"]
    assert all((out / f).is_file() for f in froms)
    modelfile = (out / "Modelfile").read_text()
    assert 'PARAMETER stop "<end_of_turn>"' in modelfile and "PARAMETER temperature 0" in modelfile
    assert "<start_of_turn>user\n" in modelfile and "<start_of_turn>model\n" in modelfile
    data = json.loads((out / "export.json").read_text())
    assert data["ollama_create"] == f"ollama create chart-lora -f {out / 'Modelfile'}"
    assert data["llamacpp_spec"] == f"llamacpp:{out / 'chart-lora.q4_k_m.gguf'}"
    assert data["converter"] == "alphasignal-gemma3"
    files = {f["path"]: f for f in data["files"]}
    for name in ("Modelfile", "chart-lora.f32.gguf", "chart-lora.q4_k_m.gguf", "mmproj-chart-lora.gguf",
                 "merged/model.safetensors", "merged/chat_template.jinja"):
        assert files[name]["bytes"] == (out / name).stat().st_size
    digest = hashlib.sha256((out / "chart-lora.q4_k_m.gguf").read_bytes()).hexdigest()
    assert files["chart-lora.q4_k_m.gguf"]["sha256"] == digest
    assert files["chart-lora.q4_k_m.gguf"]["bytes"] < files["chart-lora.f32.gguf"]["bytes"] / 2


def test_failed_export_leaves_nothing(trained, tmp_path, monkeypatch):
    from alphasignal.finetune import export, gguf_tools

    def broken(src, dst, quant, threads=0):
        dst.write_bytes(b"half")
        raise ExportError("quantizer crashed")

    monkeypatch.setattr(gguf_tools, "quantize", broken)
    with pytest.raises(ExportError, match="quantizer crashed"):
        export.export_run(trained, tmp_path / "out", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_f16_export_skips_quantization(trained, tmp_path):
    from alphasignal.backends.tiny_mmproj import read_gguf_metadata
    from alphasignal.finetune.export import export_run

    report = export_run(trained, tmp_path / "out", quant="f16", name="tiny-f16", progress=False, verify=False)
    assert report.model.name == "tiny-f16.f16.gguf" and report.merged is None
    assert read_gguf_metadata(report.model, ["general.file_type"])["general.file_type"] == 1  # MOSTLY_F16


@pytest.mark.parametrize("make, match", [
    (lambda d: d / "missing", "not a folder"),
    (lambda d: d, "neither a run folder"),
])
def test_bad_sources(tmp_path, make, match):
    from alphasignal.finetune.export import export_run

    with pytest.raises(ExportError, match=match):
        export_run(make(tmp_path), tmp_path / "out", progress=False)


def test_unknown_quant_and_bad_name(trained, tmp_path):
    from alphasignal.finetune.export import export_run

    with pytest.raises(ExportError, match="unknown quantization 'q3_xx'; use one of q4_k_m, q8_0, f16"):
        export_run(trained, tmp_path / "out", quant="q3_xx", progress=False)
    with pytest.raises(ExportError, match="not valid for Ollama"):
        export_run(trained, tmp_path / "out", name="My Model", progress=False)
    assert not (tmp_path / "out").exists()


def test_nonempty_out_is_refused(trained, tmp_path):
    from alphasignal.finetune.export import export_run

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="already exists and is not empty"):
        export_run(trained, tmp_path / "out", progress=False)
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


# ----------------------------------------------------------------------------------------------- delegation


def _qwen_checkpoint(folder: Path, arch: str = "Qwen2_5_VLForConditionalGeneration") -> Path:
    from safetensors.numpy import save_file

    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"architectures": [arch], "model_type": "qwen2_5_vl"}))
    save_file({"model.embed_tokens.weight": np.zeros((4, 4), dtype=np.float32)}, str(folder / "model.safetensors"))
    return folder


FAKE_CONVERTER = textwrap.dedent('''
    """A stand-in for llama.cpp's convert_hf_to_gguf.py that records its argv and copies given GGUFs.

    It tests how OUR code builds the converter commands and handles its results;
    it is not a substitute for the real converter.
    """
    import json, os, shutil, sys
    argv = sys.argv[1:]
    with open(os.environ["FAKE_LOG"], "a") as log:
        log.write(json.dumps(argv) + "\\n")
    if os.environ.get("FAKE_FAIL"):
        print("ERROR:hf-to-gguf:Model Qwen2_5_VLForConditionalGeneration is not supported", file=sys.stderr)
        sys.exit(1)
    out = argv[argv.index("--outfile") + 1]
    shutil.copy(os.environ["FAKE_MMPROJ" if "--mmproj" in argv else "FAKE_TEXT"], out)
''')


@pytest.fixture
def fake_llama_cpp(tmp_path, monkeypatch, converted):
    folder = tmp_path / "llama.cpp"
    folder.mkdir()
    (folder / "convert_hf_to_gguf.py").write_text(FAKE_CONVERTER)
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "argv.jsonl"))
    monkeypatch.setenv("FAKE_TEXT", str(converted[0]))
    monkeypatch.setenv("FAKE_MMPROJ", str(converted[1]))
    return folder


def test_other_architectures_go_through_llama_cpp(fake_llama_cpp, tmp_path):
    """Command construction and the rest of the export for a delegated (non-Gemma) model, via a fake converter."""
    from alphasignal.finetune.export import export_run

    ckpt = _qwen_checkpoint(tmp_path / "qwen-ft")
    report = export_run(ckpt, tmp_path / "out", llama_cpp=fake_llama_cpp, progress=False)
    calls = [json.loads(line) for line in (tmp_path / "argv.jsonl").read_text().splitlines()]
    out = tmp_path / "out"
    assert [c[:3] for c in calls] == [[str(ckpt), "--outtype", "f32"]] * 2
    assert calls[0][3] == "--outfile" and Path(calls[0][4]).name == "qwen-ft.f32.gguf"
    assert calls[1][3:5] == ["--mmproj", "--outfile"] and Path(calls[1][5]).name == "mmproj-qwen-ft.gguf"
    assert Path(calls[0][4]).parent != out  # written to the hidden work folder, renamed at the end
    assert report.converter == "llama.cpp" and report.model == out / "qwen-ft.q4_k_m.gguf"
    modelfile = (out / "Modelfile").read_text()
    assert 'PARAMETER stop "<|im_end|>"' in modelfile and "<|im_start|>" in modelfile


def test_llama_cpp_errors(fake_llama_cpp, tmp_path, monkeypatch):
    from alphasignal.finetune.export import export_run

    ckpt = _qwen_checkpoint(tmp_path / "qwen-ft")
    with pytest.raises(ExportError, match="git clone https://github.com/ggml-org/llama.cpp"):
        export_run(ckpt, tmp_path / "out", progress=False)
    with pytest.raises(ExportError, match="convert_hf_to_gguf.py not found"):
        export_run(ckpt, tmp_path / "out", llama_cpp=tmp_path, progress=False)
    monkeypatch.setenv("FAKE_FAIL", "1")
    with pytest.raises(ExportError, match="is not supported; .*PR #13209"):
        export_run(ckpt, tmp_path / "out", llama_cpp=fake_llama_cpp, progress=False)
    bare = _qwen_checkpoint(tmp_path / "bare", arch="Qwen2_5_VLModel")
    with pytest.raises(ExportError, match="llama.cpp#13802"):
        export_run(bare, tmp_path / "out", llama_cpp=fake_llama_cpp, progress=False)
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------------------- CLI


def test_cli_export_json(trained, tmp_path, capsys):
    from alphasignal.cli_export import add_parsers, run

    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["export", str(trained), "--out", str(tmp_path / "out"), "--quant", "q8_0",
                              "--name", "tiny-q8", "--json"])
    assert run(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["model"] == str(tmp_path / "out" / "tiny-q8.q8_0.gguf")
    assert data["ollama_create"].startswith("ollama create tiny-q8 -f ")


def test_export_modules_import_lightly():
    code = ("import sys, alphasignal.cli_export, alphasignal.finetune.export; "
            "print(sorted(m for m in ('torch', 'llama_cpp', 'transformers', 'peft', 'gguf') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# ----------------------------------------------------------------------------------------------- converter guards


def test_layouts_llama_cpp_would_compute_differently_are_refused():
    from alphasignal.finetune.gguf_gemma3 import check_llama_cpp_layout

    gemma = {"num_hidden_layers": 7, "hidden_size": 64, "num_attention_heads": 2, "head_dim": 32,
             "query_pre_attn_scalar": 32, "rope_parameters": {"sliding_attention": {"rope_theta": 10000.0}}}
    check_llama_cpp_layout(gemma)  # layers 0-4 and 6 slide, layer 5 is global: llama.cpp's pattern
    with pytest.raises(ExportError, match="every 6th layer global"):
        check_llama_cpp_layout({**gemma, "layer_types": ["sliding_attention"] * 7})
    with pytest.raises(ExportError, match="query_pre_attn_scalar 64"):
        check_llama_cpp_layout({**gemma, "query_pre_attn_scalar": 64})
    with pytest.raises(ExportError, match="rope base 50000.0"):
        check_llama_cpp_layout({**gemma, "rope_parameters": {"sliding_attention": {"rope_theta": 50000.0}}})


def test_bf16_weights_are_read_exactly(tmp_path):
    from safetensors.torch import save_file

    from alphasignal.finetune.gguf_gemma3 import checkpoint_tensors, load_tensor

    weights = torch.randn(3, 5).to(torch.bfloat16)
    save_file({"w": weights}, str(tmp_path / "model.safetensors"))
    np.testing.assert_array_equal(load_tensor(checkpoint_tensors(tmp_path)["w"]), weights.float().numpy())
