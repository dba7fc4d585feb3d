"""Steering: the vector points along the class shift, alpha = 0 is a no-op, the hook acts from its layer on."""

import numpy as np
import pytest
import torch
from trusttrace.errors import DegenerateCellError, TrustTraceError
from trusttrace.models import decoder_blocks
from trusttrace.steering import (
    PAPER_PROMPTS,
    _answer_reducer,
    _mean_token_loglik,
    answer_candidates,
    dimension_prompt,
    effect_summary,
    evaluate_cell,
    evaluation_rows,
    likelihood_margin,
    load_vectors,
    measure_weights,
    random_directions,
    save_vectors,
    score_under_shifts,
    steered,
    steering_vector,
    stratified_bootstrap,
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


def test_margin():
    assert likelihood_margin(np.array([-1.0, -3.0, -2.0]), np.array([1, 0, 0]), 1) == pytest.approx(1.5)
    assert likelihood_margin(np.array([-1.0, -3.0, -2.0]), np.array([1, 0, 0]), 0) == pytest.approx(-1.5)


# ---------------------------------------------------------------------------------------------------------------
# Statistics on values whose answer is known


def test_antisymmetric_effect_cancels_damage_and_random_control_is_subtracted():
    """x_i(a) = base_i - (0.3 + 0.01 t_i) a^2 (damage for either sign, a little more on the trustworthy side, t = 1)
    + 0.05 a t_i: the likelihood margin's antisymmetric effect at a is exactly 0.05 a; random directions that only
    damage have antisymmetric effect 0."""
    rng = np.random.default_rng(0)
    n = 200
    trustworthy = np.arange(n) % 2 == 0
    base = rng.normal(-3.0, 0.5, size=n)
    alphas = [-4.0, -1.0, 0.0, 1.0, 4.0]
    damage = {a: (0.3 + 0.01 * trustworthy) * a**2 for a in alphas}
    values = {a: base - damage[a] + 0.05 * a * trustworthy for a in alphas}
    random = {a: np.stack([base - damage[a] + rng.normal(0, 1e-3, size=n) for _ in range(8)]) for a in alphas}
    weights = measure_weights(trustworthy, "likelihood_margin")
    draws = stratified_bootstrap(trustworthy, 500, seed=1)
    summary = effect_summary(values, random, 4.0, weights, draws)
    assert summary["antisymmetric"]
    assert summary["effect"] == pytest.approx(0.2, abs=1e-12)  # (m(+4) - m(-4)) / 2 = 0.05 * 4; damage cancels
    assert summary["effect_ci_low"] == pytest.approx(0.2, abs=1e-9) and summary["effect_ci_high"] == pytest.approx(
        0.2, abs=1e-9
    )
    assert abs(summary["random_mean"]) < 1e-3 and summary["random_sd"] < 1e-3
    assert summary["effect_vs_random"] == pytest.approx(0.2, abs=1e-3)
    # the one-sided change against alpha 0 would have called the damage an effect
    one_sided = effect_summary(
        {0.0: values[0.0], 4.0: values[4.0]}, {0.0: random[0.0], 4.0: random[4.0]}, 4.0, weights, draws
    )
    assert not one_sided["antisymmetric"] and one_sided["effect"] == pytest.approx(0.2 - 0.16, abs=1e-12)
    assert one_sided["random_mean"] == pytest.approx(-0.16, abs=1e-3)
    assert one_sided["effect_vs_random"] == pytest.approx(0.2, abs=1e-3)  # the random control removes the damage


def test_bootstrap_ci_covers_a_noisy_effect_and_is_seeded():
    rng = np.random.default_rng(3)
    n = 400
    trustworthy = np.arange(n) % 2 == 0
    values = {0.0: np.zeros(n), 1.0: rng.normal(0.1, 1.0, size=n) * trustworthy, -1.0: np.zeros(n)}
    random = {a: np.zeros((8, n)) for a in values}
    weights = measure_weights(trustworthy, "prompted_margin")  # class-balanced mean: weights 1/(2 n_side)
    assert weights.sum() == pytest.approx(1.0)
    draws = stratified_bootstrap(trustworthy, 1000, seed=0)
    assert (trustworthy[draws] == trustworthy[None]).all()  # resampling stays within each side
    summary = effect_summary(values, random, 1.0, weights, draws)
    half = values[1.0] / 2 @ weights  # antisymmetric: (x(+1) - x(-1)) / 2
    assert summary["effect"] == pytest.approx(half)
    # SE of a class-balanced mean of 200 N(0.1, 1) / 2 values, halved again: 0.5 * 0.5 / sqrt(200) ~ 0.0177
    width = summary["effect_ci_high"] - summary["effect_ci_low"]
    assert 0.05 < width < 0.09
    assert summary["effect_ci_low"] < half < summary["effect_ci_high"]
    again = effect_summary(values, random, 1.0, weights, stratified_bootstrap(trustworthy, 1000, seed=0))
    assert again == summary


def test_random_directions_have_the_vector_norm_and_are_seeded():
    vector = np.arange(16, dtype=np.float32)
    draws = random_directions(vector, 8, seed=5)
    np.testing.assert_allclose(np.linalg.norm(draws, axis=1), np.linalg.norm(vector), rtol=1e-5)
    np.testing.assert_array_equal(draws, random_directions(vector, 8, seed=5))
    assert np.abs(np.corrcoef(draws)[np.triu_indices(8, 1)]).max() < 0.9


def test_evaluation_rows_use_validation_or_fall_back_to_halves_of_test():
    import pandas as pd

    frame = pd.DataFrame(
        {
            "row_id": range(40),
            "statement": [f"s{i}" for i in range(40)],
            "label": np.arange(40) % 2,
            "split": ["train"] * 20 + ["validation"] * 8 + ["test"] * 12,
        }
    )
    rows, on_half = evaluation_rows(frame, seed=0)
    assert not on_half and (rows["eval_split"] == rows["split"]).all() and len(rows) == 20
    old = frame.assign(split=["train"] * 20 + ["test"] * 20)
    rows, on_half = evaluation_rows(old, seed=0)
    assert on_half and set(rows["split"]) == {"test"} and len(rows) == 20
    counts = rows.groupby(["eval_split", "label"]).size()
    assert counts.tolist() == [5, 5, 5, 5]  # stratified halves
    assert rows.equals(evaluation_rows(old, seed=0)[0])
    grouped = old.assign(group=np.arange(40) // 4)
    rows, _ = evaluation_rows(grouped, seed=0)
    assert rows.groupby("group")["eval_split"].nunique().max() == 1  # no group on both sides
    rows, _ = evaluation_rows(old, seed=0, max_statements=6)
    assert rows.groupby("eval_split").size().tolist() == [6, 6]


def test_prompts_default_to_the_papers_and_are_checked():
    privacy = dimension_prompt("my_privacy", {"demo": "privacy", "trustworthy_label": 0})
    assert privacy["prompt"] == PAPER_PROMPTS["privacy"]["prompt"] and privacy["answers"]["trustworthy"] == "0"
    assert "privacy violation" in privacy["prompt"]
    assert dimension_prompt("robustness", {"csv": "x.csv", "trustworthy_label": 1})["answers"]["trustworthy"] == "1"
    generic = dimension_prompt("honesty", {"csv": "x.csv", "trustworthy_label": 1})
    assert generic["default_of"] == "generic" and "{statement}" in generic["prompt"]
    own = dimension_prompt("x", {"csv": "x.csv", "prompt": "Q: {statement} ok?", "answers": {"trustworthy": "yes"}})
    assert own["answers"] == {"trustworthy": "yes", "untrustworthy": "0"} and own["default_of"] == "config"
    with pytest.raises(TrustTraceError, match=r"dimensions\.x\.prompt: must contain \{statement\}"):
        dimension_prompt("x", {"csv": "x.csv", "prompt": "no field"})
    with pytest.raises(TrustTraceError, match=r"dimensions\.x\.answers: the two answer words are the same"):
        dimension_prompt("x", {"csv": "x.csv", "answers": {"trustworthy": "1", "untrustworthy": "1"}})


# ---------------------------------------------------------------------------------------------------------------
# A planted direction: the answer token must flip under the default protocol


def planted_answer_vector(model, candidates):
    """A residual direction that, added at the last block, raises the first answer's logits over the second's:
    the difference of the answers' unembedding rows, divided by the final norm's gain (so it survives the norm)."""
    unembedding = model.get_output_embeddings().weight.detach().double().numpy()
    gain = model.model.norm.weight.detach().double().numpy()
    first = [t for t in candidates[0, 0] if t >= 0]
    second = [t for t in candidates[0, 1] if t >= 0]
    direction = (unembedding[first].mean(0) - unembedding[second].mean(0)) / gain
    return (direction / np.linalg.norm(direction)).astype(np.float32)


STATEMENTS = ["The sky is blue.", "The sky is green.", "Fire is hot.", "Fire is cold.", "Ice is cold.", "Ice is hot."]


def test_planted_direction_flips_the_answer_under_the_default_protocol(tiny_model):
    model, tokenizer = tiny_model
    prompt = {
        "prompt": "Is it true? {statement} Answer with 1 or 0. Answer:",
        "answers": {"trustworthy": "1", "untrustworthy": "0"},
    }
    texts = [prompt["prompt"].format(statement=s) for s in STATEMENTS]
    candidates = answer_candidates(tokenizer, texts, ("1", "0"), add_special_tokens=True)
    vector = planted_answer_vector(model, candidates) * 3.0
    labels = np.array([1, 0, 1, 0, 1, 0])
    splits = np.array(["validation", "validation", "test", "test", "test", "test"], dtype=object)
    common = {"prompt": prompt, "chat": True, "n_random": 8, "n_bootstrap": 100, "seed": 0, "batch_size": 4}
    alphas = [-20.0, 0.0, 20.0]
    result = evaluate_cell(model, tokenizer, STATEMENTS, labels, splits, 1, vector, 2, alphas, **common)
    assert result["positions"] == "last" and result["primary_measure"] == "prompted_margin"
    by_alpha = {r["alpha"]: r for r in result["by_alpha"]}
    # answer_bias = mean log P("1") - log P("0") rises with alpha
    assert by_alpha[20.0]["answer_bias"] > by_alpha[0.0]["answer_bias"] + 0.3 > by_alpha[-20.0]["answer_bias"] + 0.6
    # every statement answers "1" at +20 and "0" at -20: one side all right, the other all wrong (balanced 0.5)
    assert by_alpha[20.0]["accuracy"] == pytest.approx(0.5) and by_alpha[-20.0]["accuracy"] == pytest.approx(0.5)
    prompt_ids = [tokenizer(t)["input_ids"] for t in texts]
    shifts = np.stack([0 * vector, 20 * vector, -20 * vector])
    jobs = np.array([(i, c) for c in range(3) for i in range(len(texts))])
    scores = score_under_shifts(
        model, 2, prompt_ids, jobs, shifts, _answer_reducer(candidates), positions="last", left_pad=True
    ).reshape(3, len(texts), 2)
    bias = scores[..., 0] - scores[..., 1]
    assert (bias[1] > 0).all() and (bias[2] < 0).all()  # the answer token flips for every statement
    # steering only generated tokens never touches the answer token: bitwise no change
    generated = evaluate_cell(
        model, tokenizer, STATEMENTS, labels, splits, 1, vector, 2, alphas, positions="generated", **common
    )
    changes = {r["alpha"]: r["answer_bias"] for r in generated["by_alpha"]}
    assert changes[20.0] == changes[0.0] == changes[-20.0]
    effects = [e for e in generated["effects"] if e["measure"] == "prompted_margin"]
    assert all(e["effect"] == 0.0 for e in effects)
    # the likelihood margin steers every statement position under either protocol
    assert by_alpha[20.0]["margin_change"] != 0.0


def test_evaluate_cell_records_every_measure_split_and_control(tiny_model):
    model, tokenizer = tiny_model
    labels = np.array([1, 0, 1, 0, 1, 0])
    splits = np.array(["validation", "validation", "test", "test", "test", "test"], dtype=object)
    vector = np.random.default_rng(1).normal(size=32).astype(np.float32)
    prompt = dimension_prompt("reliability", {"demo": "reliability"})

    def run():
        return evaluate_cell(
            model,
            tokenizer,
            STATEMENTS,
            labels,
            splits,
            1,
            vector,
            1,
            [-2, 0, 2],
            prompt=prompt,
            chat=True,
            n_random=8,
            n_bootstrap=200,
            seed=0,
            max_length=8,
        )

    result = run()
    assert [r["alpha"] for r in result["by_alpha"]] == [-2.0, 0.0, 2.0]
    assert [r["n_statements"] for r in result["by_alpha"]] == [4, 4, 4]
    assert [r["n_statements"] for r in result["by_alpha_validation"]] == [2, 2, 2]
    zero = result["by_alpha"][1]
    assert (
        zero["margin_change"] == 0.0 and zero["fluency_change"] == 0.0 and result["by_alpha"][0]["margin_change"] != 0
    )
    assert result["n_truncated"] == 2  # the two 10-token statements; the others have 8
    kinds = {(e["measure"], e["split"], e["alpha"]) for e in result["effects"]}
    assert kinds == {
        (m, s, 2.0)
        for m in ("likelihood_margin", "prompted_margin", "prompted_accuracy")
        for s in ("test", "validation")
    }
    for entry in result["effects"]:
        assert entry["antisymmetric"] and entry["effect_ci_low"] <= entry["effect"] <= entry["effect_ci_high"]
        assert entry["random_sd"] >= 0 and entry["effect_vs_random"] == pytest.approx(
            entry["effect"] - entry["random_mean"]
        )
    test_margin = next(e for e in result["effects"] if e["measure"] == "likelihood_margin" and e["split"] == "test")
    by_alpha = {r["alpha"]: r for r in result["by_alpha"]}
    assert test_margin["effect"] == pytest.approx((by_alpha[2.0]["margin"] - by_alpha[-2.0]["margin"]) / 2)
    assert test_margin["fluency_cost"] == pytest.approx(-by_alpha[2.0]["fluency_change"])
    assert run() == result  # seeded: same inputs, same numbers
    with pytest.raises(TrustTraceError, match=r"needs an alpha > 0"):
        evaluate_cell(model, tokenizer, STATEMENTS, labels, splits, 1, vector, 1, [-1, 0])


def test_scoring_backs_off_on_out_of_memory(tiny_model, monkeypatch, caplog):
    model, tokenizer = tiny_model
    ids = [tokenizer(s)["input_ids"] for s in STATEMENTS]
    shifts = np.stack([np.zeros(32), np.random.default_rng(0).normal(size=32)]).astype(np.float32)
    jobs = np.array([(i, c) for c in range(2) for i in range(len(ids))])
    reference = score_under_shifts(model, 1, ids, jobs, shifts, _mean_token_loglik, batch_size=2)
    forward = model.forward
    calls = []

    def small_only(*args, **kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        if kwargs["input_ids"].shape[0] > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", small_only)
    with caplog.at_level("WARNING"):
        backed_off = score_under_shifts(model, 1, ids, jobs, shifts, _mean_token_loglik, batch_size=8)
    np.testing.assert_allclose(backed_off, reference, rtol=1e-5)
    # The first pass caches block 1's output of the 6 sequences (6 -> 3 -> 1), then the 12 jobs go 8 -> 4 -> 2
    # (and the first batch once more through every block, the check of the cached path).
    assert calls[0] == 6 and calls.count(8) == 2 and "out of memory at steering batch size 8" in caplog.text

    def broken(*args, **kwargs):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(model, "forward", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        score_under_shifts(model, 1, ids, jobs, shifts, _mean_token_loglik, batch_size=8)


def test_one_steering_job_scores_every_dimension_of_a_checkpoint_as_separate_jobs_would(tiny_model, tmp_path):
    """write_checkpoint_steering (one target load for all dimensions) writes, per dimension, the files that
    write_steering_cells writes for that dimension alone; mismatched inputs fail before any forward pass."""
    import pandas as pd
    from trusttrace.steering import write_checkpoint_steering, write_steering_cells

    model, tokenizer = tiny_model
    rng = np.random.default_rng(0)
    settings = {
        "layers": [1],
        "alphas": [-1, 0, 1],
        "positions": "last",
        "n_random": 2,
        "n_bootstrap": 50,
        "seed": 0,
        "max_statements": None,
    }
    common = {
        "settings": settings,
        "encoding": {"special_tokens": "auto", "max_length": 8},
        "spec": {"chat": False, "batch_size": 4},
        "target": {"model": "tiny", "checkpoint": "final"},
    }
    dimensions, data, vectors, outputs = {}, [], [], []
    for name, label in (("one", 1), ("two", 0)):
        frame = pd.DataFrame(
            {
                "row_id": range(6),
                "statement": STATEMENTS[:6],
                "label": [1, 0, 1, 0, 1, 0],
                "split": ["validation", "validation", "test", "test", "test", "test"],
            }
        )
        vector_dir = tmp_path / "vectors" / name
        vector_dir.mkdir(parents=True)
        save_vectors(vector_dir / "layer=1.safetensors", {1: rng.normal(size=32).astype(np.float32)}, {})
        (vector_dir / "layer=1.json").write_text("{}")
        cell = {"model": "tiny", "checkpoint": "step0", "dimension": name}
        dimensions[name] = {"cell": cell, "trustworthy_label": label, "prompt": None}
        data.append(frame)
        vectors.append(vector_dir)
        outputs.append(tmp_path / "together" / name)
        alone = tmp_path / "alone" / name
        write_steering_cells(
            model, tokenizer, frame, vector_dir, alone, cell=cell, trustworthy_label=label, prompt=None, **common
        )
    write_checkpoint_steering(model, tokenizer, dimensions, data=data, vectors=vectors, outputs=outputs, **common)
    for name in dimensions:
        together = (tmp_path / "together" / name / "layer=1.json").read_bytes()
        assert together == (tmp_path / "alone" / name / "layer=1.json").read_bytes()
        assert b'"effects"' in together
    with pytest.raises(TrustTraceError, match=r"2 dimensions but 1 data tables"):
        write_checkpoint_steering(
            model, tokenizer, dimensions, data=data[:1], vectors=vectors, outputs=outputs, **common
        )


def _last_position_logits(logits, ids, mask, batch_jobs):
    return logits[:, -1, :8]


@pytest.mark.parametrize(
    "positions, left_pad, reduce", [("all", False, _mean_token_loglik), ("last", True, _last_position_logits)]
)
def test_reusing_the_unshifted_blocks_gives_the_scores_of_the_full_forward(tiny_model, positions, left_pad, reduce):
    """Blocks before the steered one see no shift: computing them once per statement (stand-ins meanwhile) gives
    the scores of running every block for every condition, within float rounding, at every steered layer."""
    model, tokenizer = tiny_model
    ids = [tokenizer(s)["input_ids"] for s in STATEMENTS]
    rng = np.random.default_rng(0)
    shifts = np.concatenate([np.zeros((1, 32)), rng.normal(size=(3, 32)) * 3]).astype(np.float32)
    jobs = np.array([(i, c) for c in range(len(shifts)) for i in range(len(ids))])
    blocks_before = list(decoder_blocks(model))
    for layer in (1, 2):
        kwargs = {"positions": positions, "left_pad": left_pad, "batch_size": 5}
        fast = score_under_shifts(model, layer, ids, jobs, shifts, reduce, **kwargs)
        plain = score_under_shifts(model, layer, ids, jobs, shifts, reduce, reuse_prefix=False, **kwargs)
        np.testing.assert_allclose(fast, plain, rtol=0, atol=1e-5)
        by_condition = plain[:, 0].reshape(len(shifts), -1)
        assert np.ptp(by_condition, axis=0).max() > 1e-3  # the shifts do change the scores
    assert list(decoder_blocks(model)) == blocks_before  # the real blocks are back


def test_a_model_whose_blocks_cannot_be_skipped_falls_back_to_the_full_forward(tiny_model, caplog):
    """A model that reads something from a block before the steered one at a later point (here: a hook adds 1 to
    the final norm's input when block 1 ran) scores differently with stand-ins: the first-batch check sees it,
    warns, and every condition is scored through every block."""
    model, tokenizer = tiny_model
    ids = [tokenizer(s)["input_ids"] for s in STATEMENTS]
    shifts = np.stack([np.zeros(32), np.random.default_rng(0).normal(size=32)]).astype(np.float32)
    jobs = np.array([(i, c) for c in range(2) for i in range(len(ids))])
    ran = {}
    handles = [
        model.get_input_embeddings().register_forward_pre_hook(lambda module, args: ran.update(block1=False)),
        decoder_blocks(model)[0].register_forward_hook(lambda module, args, output: ran.update(block1=True)),
        model.model.norm.register_forward_pre_hook(lambda module, args: (args[0] + (1.0 if ran["block1"] else 0.0),)),
    ]
    try:
        plain = score_under_shifts(model, 2, ids, jobs, shifts, _mean_token_loglik, reuse_prefix=False)
        with caplog.at_level("WARNING"):
            checked = score_under_shifts(model, 2, ids, jobs, shifts, _mean_token_loglik)
    finally:
        for handle in handles:
            handle.remove()
    assert "cannot be reused across conditions" in caplog.text
    np.testing.assert_array_equal(checked, plain)
