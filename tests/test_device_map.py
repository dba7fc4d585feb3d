"""Models loaded with a device_map (accelerate places the blocks): extraction and steering follow each block's
own device. On this CPU-only machine every block is on the CPU; the GPU path is the same code, untested here."""

from __future__ import annotations

import numpy as np
import pytest
from trusttrace.errors import TrustTraceError
from trusttrace.extract import extract_hidden_states
from trusttrace.models import block_parameter, decoder_blocks, input_device, load_model_and_tokenizer
from trusttrace.steering import steered

STATEMENTS = ["The sky is blue.", "Water boils at one hundred degrees.", "Cats are mammals."]


@pytest.fixture(scope="module")
def mapped_and_plain(tiny_checkpoint_dir):
    pytest.importorskip("accelerate")
    mapped = load_model_and_tokenizer(str(tiny_checkpoint_dir), device_map={"": "cpu"})
    plain = load_model_and_tokenizer(str(tiny_checkpoint_dir))
    return mapped, plain


def test_device_map_reaches_from_pretrained_and_devices_are_found_per_block(
    mapped_and_plain, tiny_checkpoint_dir, monkeypatch
):
    import transformers

    seen = {}
    original = transformers.AutoModelForCausalLM.from_pretrained

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", spy)
    load_model_and_tokenizer(str(tiny_checkpoint_dir), device_map="auto")
    assert seen["device_map"] == "auto"
    (model, _), _ = mapped_and_plain
    assert input_device(model).type == "cpu"
    assert {block_parameter(block).device.type for block in decoder_blocks(model)} == {"cpu"}


def test_extraction_and_steering_agree_with_the_plain_load(mapped_and_plain):
    import torch

    (mapped, tokenizer), (plain, _) = mapped_and_plain
    layers = list(range(len(decoder_blocks(plain)) + 1))
    a = extract_hidden_states(mapped, tokenizer, STATEMENTS, layers, progress=False)
    b = extract_hidden_states(plain, tokenizer, STATEMENTS, layers, progress=False)
    for layer in layers:
        np.testing.assert_array_equal(a[layer], b[layer])
    vector = np.ones(plain.config.hidden_size, dtype=np.float32)
    ids = tokenizer(STATEMENTS[0], return_tensors="pt")["input_ids"]
    with torch.no_grad(), steered(mapped, 1, vector, 2.0, positions="all"):
        steered_mapped = mapped(input_ids=ids).logits
    with torch.no_grad(), steered(plain, 1, vector, 2.0, positions="all"):
        steered_plain = plain(input_ids=ids).logits
    with torch.no_grad():
        unsteered = plain(input_ids=ids).logits
    torch.testing.assert_close(steered_mapped, steered_plain)
    assert not torch.equal(steered_plain, unsteered)


def test_quantised_loading_needs_bitsandbytes(tiny_checkpoint_dir):
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is not None:
        pytest.skip("bitsandbytes is installed: the missing-package error cannot be shown")
    with pytest.raises(TrustTraceError, match="load_in: 8bit needs the bitsandbytes package"):
        load_model_and_tokenizer(str(tiny_checkpoint_dir), load_in="8bit")
