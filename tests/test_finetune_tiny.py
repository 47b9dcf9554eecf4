"""The tiny Gemma-3 VLM the CPU fine-tuning path and the export tests build on."""

import json

import pytest

from alphasignal.finetune.tiny import SPECIAL_TOKENS, TinyConfig, build_tiny_vlm


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_vlm(tmp_path_factory.mktemp("tiny") / "model", TinyConfig(seed=3))


def test_checkpoint_has_the_files_a_real_base_model_has(tiny):
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "preprocessor_config.json", "processor_config.json"):
        assert (tiny / name).is_file(), name
    cfg = json.loads((tiny / "config.json").read_text())
    assert cfg["model_type"] == "gemma3"
    assert cfg["mm_tokens_per_image"] == 16


def test_processor_expands_the_image_marker_and_the_model_gives_a_finite_loss(tiny):
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny)
    tok = processor.tokenizer
    assert [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == list(range(len(SPECIAL_TOKENS)))
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "You read charts."}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Analyse this chart."}]},
        {"role": "assistant", "content": [{"type": "text", "text": '{"action":"HOLD"}'}]},
    ]
    text = tok.apply_chat_template(messages, tokenize=False)
    assert text.startswith("<bos><start_of_turn>user\nYou read charts.\n\n<start_of_image>Analyse")
    assert text.endswith('<start_of_turn>model\n{"action":"HOLD"}<end_of_turn>\n')
    batch = processor(text=[text], images=[[Image.new("RGB", (120, 90), "white")]], return_tensors="pt")
    image_id = tok.convert_tokens_to_ids("<image_soft_token>")
    assert int((batch["input_ids"] == image_id).sum()) == 16
    model = AutoModelForImageTextToText.from_pretrained(tiny)
    with torch.no_grad():
        loss = model(**batch, labels=batch["input_ids"]).loss
    assert torch.isfinite(loss) and loss.item() > 0


def test_same_seed_gives_the_same_weights(tmp_path, tiny):
    from safetensors.numpy import load_file

    again = build_tiny_vlm(tmp_path / "again", TinyConfig(seed=3))
    a, b = load_file(tiny / "model.safetensors"), load_file(again / "model.safetensors")
    assert a.keys() == b.keys()
    assert all((a[k] == b[k]).all() for k in a)


def test_the_image_changes_the_models_output(tiny):
    """A zero projector (transformers' default init) would make every image look the same to the model."""
    import numpy as np
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny)
    model = AutoModelForImageTextToText.from_pretrained(tiny)
    text = "<bos><start_of_turn>user\n<start_of_image>Analyse<end_of_turn>\n<start_of_turn>model\n"
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    logits = []
    for image in (Image.new("RGB", (64, 64), "white"), noise):
        batch = processor(text=[text], images=[[image]], return_tensors="pt")
        with torch.no_grad():
            logits.append(model(**batch).logits[0, -1])
    assert (logits[0] - logits[1]).abs().max().item() > 1e-3
