"""Steering vectors (difference of class means, scaled by the spread of projections; Qian et al. 2024 §3) and
what adding them to a target model's residual stream does.

Building a vector needs numpy only. Evaluating one needs torch: a forward hook on block l adds alpha * v to the
block's output, and is always removed, also on error. alpha = 0 registers no hook at all, so logits are bitwise
those of the untouched model.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import numpy as np

from trusttrace.errors import DegenerateCellError, TrustTraceError

DEFAULT_PROMPT = (
    "Answer with 1 if the following statement is {positive}, else 0.\nStatement: {statement}\nAnswer:"
)


def steering_vector(X: np.ndarray, y: np.ndarray, trustworthy_label: int) -> tuple[np.ndarray, dict[str, float]]:
    """(hidden,) float32 vector pointing from the other class's mean to the trustworthy class's mean.

    Its direction is the normalised difference of class means; its length is the standard deviation of all rows'
    projections on that direction, so alpha is in units of the representation's own spread along it.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if X.ndim != 2 or len(X) != len(y):
        raise TrustTraceError(f"steering_vector: X must be (n, hidden) with n = len(y); got {X.shape} and {y.shape}")
    counts = np.bincount(y.astype(int), minlength=2)
    if counts.min() == 0:
        raise TrustTraceError(f"steering_vector: need both classes (label counts {counts.tolist()})")
    difference = X[y == 1].mean(axis=0) - X[y == 0].mean(axis=0)
    norm = float(np.linalg.norm(difference))
    if norm == 0.0:
        raise DegenerateCellError("steering_vector: the two class means coincide; no direction to steer along")
    direction = difference / norm * (1.0 if trustworthy_label == 1 else -1.0)
    scale = float(np.std(X @ direction))
    info = {"mean_difference_norm": norm, "projection_std": scale, "toward_label": int(trustworthy_label)}
    return (direction * scale).astype(np.float32), info


def save_vectors(path: str | Path, vectors: dict[int, np.ndarray], metadata: dict) -> None:
    """Vectors under ``layer=<k>`` keys; the metadata as one sorted-JSON entry (safetensors keeps metadata in a
    hash map, so several entries would be written in a different order each run)."""
    import json

    from safetensors.numpy import save_file

    tensors = {f"layer={k}": np.ascontiguousarray(v) for k, v in vectors.items()}
    save_file(tensors, str(path), metadata={"trusttrace": json.dumps(metadata, sort_keys=True, default=str)})


def load_vectors(path: str | Path) -> dict[int, np.ndarray]:
    from safetensors.numpy import load_file

    return {int(key.split("=", 1)[1]): value for key, value in load_file(str(path)).items()}


@contextlib.contextmanager
def steered(model, layer: int, vector, alpha: float, *, only_new_positions: bool = False):
    """Within the block, block ``layer`` (1-based) of ``model`` outputs h + alpha * vector.

    ``only_new_positions``: add the vector only in forward passes that process a single new position (the
    generated tokens of an incremental decode), not to the prompt.
    """
    import torch

    from trusttrace.models import decoder_blocks

    blocks = decoder_blocks(model)
    if not 1 <= layer <= len(blocks):
        raise TrustTraceError(f"steering layer {layer} out of range: the target has blocks 1..{len(blocks)}")
    if alpha == 0:
        yield
        return
    hidden = model.get_input_embeddings().weight.shape[1]
    if len(vector) != hidden:
        raise TrustTraceError(f"steering vector has {len(vector)} dimensions; the target's hidden size is {hidden}")
    parameter = next(model.parameters())
    shift = torch.as_tensor(np.asarray(vector) * alpha).to(device=parameter.device, dtype=parameter.dtype)

    def add(module, args, output):
        states = output[0] if isinstance(output, tuple) else output
        if only_new_positions and states.shape[1] != 1:
            return output
        states = states + shift
        return (states, *output[1:]) if isinstance(output, tuple) else states

    handle = blocks[layer - 1].register_forward_hook(add)
    try:
        yield
    finally:
        handle.remove()


def mean_token_loglik(model, tokenizer, statements: list[str], batch_size: int = 32, max_length: int = 128):
    """(n,) mean log-likelihood per predicted token of each statement, conditioned on a leading BOS/EOS token."""
    import torch

    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    out = np.empty(len(statements))
    for begin in range(0, len(statements), batch_size):
        chunk = statements[begin : begin + batch_size]
        ids = [[start] + tokenizer(s, add_special_tokens=False, truncation=True, max_length=max_length)["input_ids"] for s in chunk]
        batch = tokenizer.pad({"input_ids": ids}, return_tensors="pt")
        input_ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
        with torch.no_grad():
            logits = model(input_ids=input_ids, attention_mask=mask).logits.float()
        logprobs = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, input_ids[:, 1:, None])[..., 0]
        target_mask = mask[:, 1:].float()
        out[begin : begin + len(chunk)] = ((logprobs * target_mask).sum(1) / target_mask.sum(1)).cpu().numpy()
    return out


def likelihood_margin(loglik: np.ndarray, labels: np.ndarray, trustworthy_label: int) -> float:
    """Mean log-likelihood of the trustworthy-side statements minus that of the other side (nats per token)."""
    labels = np.asarray(labels)
    return float(loglik[labels == trustworthy_label].mean() - loglik[labels != trustworthy_label].mean())


def parse_digit(text: str) -> int | None:
    match = re.search(r"[01]", text)
    return int(match.group()) if match else None


def prompted_answers(model, tokenizer, prompts: list[str], max_new_tokens: int = 2) -> list[str]:
    """Greedy continuations (decoded text) of each prompt, one prompt at a time (incremental decoding, so a
    hook with ``only_new_positions`` sees the generated tokens one by one)."""
    import torch

    device = next(model.parameters()).device
    answers = []
    for prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"].to(device)
        with torch.no_grad():
            output = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        answers.append(tokenizer.decode(output[0, ids.shape[1] :], skip_special_tokens=True))
    return answers


def evaluate_steering(
    model,
    tokenizer,
    statements: list[str],
    labels: np.ndarray,
    trustworthy_label: int,
    vector: np.ndarray,
    layer: int,
    alphas: list[float],
    *,
    chat: bool = False,
    positive_description: str = "trustworthy",
    max_new_tokens: int = 2,
) -> list[dict[str, float]]:
    """One record per alpha: likelihood margin and its change against alpha = 0; for chat targets also the
    prompted-classification accuracy and the fraction of unparseable answers."""
    labels = np.asarray(labels)
    records = []
    for alpha in sorted(set([0.0] + [float(a) for a in alphas])):
        with steered(model, layer, vector, alpha):
            margin = likelihood_margin(mean_token_loglik(model, tokenizer, statements), labels, trustworthy_label)
        record = {"alpha": alpha, "margin": margin}
        if chat:
            prompts = [DEFAULT_PROMPT.format(positive=positive_description, statement=s) for s in statements]
            with steered(model, layer, vector, alpha, only_new_positions=True):
                answers = [parse_digit(a) for a in prompted_answers(model, tokenizer, prompts, max_new_tokens)]
            parsed = np.array([a is not None for a in answers])
            truth = (labels == trustworthy_label).astype(int)
            correct = np.array([a == t for a, t in zip(answers, truth)])
            record.update({"accuracy": float(correct.mean()), "unparseable": float(1 - parsed.mean())})
        records.append(record)
    base = next(r for r in records if r["alpha"] == 0.0)
    for record in records:
        record["margin_change"] = record["margin"] - base["margin"]
        if chat:
            record["accuracy_change"] = record["accuracy"] - base["accuracy"]
    return [r for r in records if r["alpha"] in {float(a) for a in alphas}]
