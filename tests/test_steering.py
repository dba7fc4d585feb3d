"""Steering: the vector points along the class shift, alpha = 0 is a no-op, the hook acts from its layer on."""

import numpy as np
import pytest
import torch

from trusttrace.errors import DegenerateCellError, TrustTraceError
from trusttrace.models import decoder_blocks
from trusttrace.steering import (
    evaluate_steering,
    likelihood_margin,
    load_vectors,
    parse_digit,
    save_vectors,
    steered,
    steering_vector,
)


def shifted_gaussians(n=400, d=16, seed=0):
    rng = np.random.default_rng(seed)
    shift = np.zeros(d)
    shift[3] = 4.0
    X = rng.normal(size=(n, d))
    y = np.arange(n) % 2
    X[y == 1] += shift
    return X, y, shift


def test_vector_points_along_the_shift_and_is_scaled_by_the_projection_spread():
    X, y, shift = shifted_gaussians()
    vector, info = steering_vector(X, y, trustworthy_label=1)
    cosine = vector @ shift / np.linalg.norm(vector) / np.linalg.norm(shift)
    assert cosine > 0.99
    # Projections on the shift axis: half at 0, half at 4, unit noise -> std = sqrt(1 + 2^2) ~ 2.24.
    assert np.linalg.norm(vector) == pytest.approx(np.sqrt(5), rel=0.1)
    assert info["mean_difference_norm"] == pytest.approx(4.0, rel=0.1)
    flipped, _ = steering_vector(X, y, trustworthy_label=0)
    np.testing.assert_allclose(flipped, -vector, rtol=1e-6)


def test_vector_errors():
    with pytest.raises(DegenerateCellError, match="class means coincide"):
        steering_vector(np.ones((10, 3)), np.arange(10) % 2, 1)
    with pytest.raises(TrustTraceError, match=r"need both classes"):
        steering_vector(np.ones((10, 3)), np.ones(10, dtype=int), 1)


def test_vectors_round_trip_safetensors(tmp_path):
    vector = np.arange(5, dtype=np.float32)
    save_vectors(tmp_path / "v.safetensors", {3: vector}, {"model": "m"})
    np.testing.assert_array_equal(load_vectors(tmp_path / "v.safetensors")[3], vector)


def block_outputs(model, ids):
    captured = []
    handles = [b.register_forward_hook(lambda m, a, o: captured.append(o.clone())) for b in decoder_blocks(model)]
    with torch.no_grad():
        logits = model(**ids).logits
    for handle in handles:
        handle.remove()
    return logits, captured


def test_alpha_zero_is_bitwise_noop_and_layer_l_changes_only_from_l_on(tiny_model):
    model, tokenizer = tiny_model
    ids = tokenizer(["Two plus two is four."], return_tensors="pt")
    vector = np.random.default_rng(0).normal(size=32).astype(np.float32)
    base_logits, base_blocks = block_outputs(model, ids)
    # transformers may keep hooks of its own on the blocks (it records hidden states with them): count ours.
    hooks_before = [len(b._forward_hooks) for b in decoder_blocks(model)]
    with steered(model, 2, vector, 0.0):
        logits, _ = block_outputs(model, ids)
    assert torch.equal(logits, base_logits)
    with steered(model, 2, vector, 3.0):
        logits, blocks = block_outputs(model, ids)
    assert torch.equal(blocks[0], base_blocks[0])  # block 1 (before the steered block) untouched
    torch.testing.assert_close(blocks[1], base_blocks[1] + 3.0 * torch.from_numpy(vector))
    assert not torch.equal(logits, base_logits)
    # The hook is gone afterwards, also when the body raises.
    with pytest.raises(RuntimeError, match="boom"):
        with steered(model, 1, vector, 1.0):
            raise RuntimeError("boom")
    assert torch.equal(block_outputs(model, ids)[0], base_logits)
    assert [len(b._forward_hooks) for b in decoder_blocks(model)] == hooks_before


def test_steering_input_errors(tiny_model):
    model, _ = tiny_model
    with pytest.raises(TrustTraceError, match=r"steering layer 3 out of range: the target has blocks 1\.\.2"):
        with steered(model, 3, np.zeros(32), 1.0):
            pass
    with pytest.raises(TrustTraceError, match=r"steering vector has 8 dimensions; the target's hidden size is 32"):
        with steered(model, 1, np.zeros(8), 1.0):
            pass


def test_evaluation_records_margin_changes(tiny_model):
    model, tokenizer = tiny_model
    statements = ["The sky is blue.", "The sky is green.", "Fire is hot.", "Fire is cold."]
    labels = np.array([1, 0, 1, 0])
    vector = np.random.default_rng(1).normal(size=32).astype(np.float32)
    records = evaluate_steering(model, tokenizer, statements, labels, 1, vector, 1, [-2, 0, 2], chat=True)
    assert [r["alpha"] for r in records] == [-2.0, 0.0, 2.0]
    assert records[1]["margin_change"] == 0.0 and records[0]["margin_change"] != 0.0
    assert all(0.0 <= r["unparseable"] <= 1.0 and 0.0 <= r["accuracy"] <= 1.0 for r in records)


def test_margin_and_digit_parsing():
    assert likelihood_margin(np.array([-1.0, -3.0, -2.0]), np.array([1, 0, 0]), 1) == pytest.approx(1.5)
    assert likelihood_margin(np.array([-1.0, -3.0, -2.0]), np.array([1, 0, 0]), 0) == pytest.approx(-1.5)
    assert parse_digit(" 1\n") == 1 and parse_digit("zero") is None and parse_digit("Answer: 0") == 0
