"""Hidden states of labelled statements: one pass per batch, every layer at once, one vector per statement.

``hidden_states[0]`` is the embedding output and ``hidden_states[l]`` the output of block l, except that
Hugging Face applies the final norm to the last entry; TrustTrace stores the raw output of the last block instead
(caught by a forward hook), so all layers are the same kind of quantity.
"""

from __future__ import annotations

import logging
import sys

import numpy as np

from trusttrace.batching import requeue_halves
from trusttrace.errors import TrustTraceError
from trusttrace.models import decoder_blocks, input_device
from trusttrace.tokens import encode_statements

log = logging.getLogger(__name__)


def _block_output(output):
    return output[0] if isinstance(output, tuple) else output


def select_tokens(hidden, attention_mask, token: str):
    """(batch, seq, hidden) -> (batch, hidden): the last real token of each row, or the mean of real tokens.

    The last real token is found from the mask, not at position -1, which is padding for all but the longest row.
    """
    import torch

    mask = attention_mask.to(hidden.device)
    if token == "last":
        positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
        last = torch.where(mask.bool(), positions, torch.zeros_like(positions)).max(dim=1).values
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    if token == "mean":
        weights = mask.to(hidden.dtype).unsqueeze(-1)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1)
    raise TrustTraceError(f"extraction.token: {token!r} is not 'last' or 'mean'")


def length_sorted_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Row positions grouped into batches of similar length (longest first), so padding is minimal."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def check_truncation(truncated: np.ndarray, max_length: int, max_fraction: float, where: str = "") -> int:
    """Count statements cut to ``max_length`` tokens; log a warning when any is, fail above ``max_fraction``.

    A cut statement's last token is not its own end, so its "last token" features describe a prefix. Returns the
    number cut.
    """
    n_truncated = int(np.count_nonzero(truncated))
    if n_truncated == 0:
        return 0
    fraction = n_truncated / len(truncated)
    prefix = f"{where}: " if where else ""
    message = (
        f"{prefix}{n_truncated} of {len(truncated)} statements ({fraction:.1%}) are longer than "
        f"extraction.max_length {max_length} tokens and were cut"
    )
    if fraction > max_fraction:
        raise TrustTraceError(
            f"{message}: more than extraction.max_truncated_fraction {max_fraction}; raise max_length"
        )
    log.warning("%s (their last-token features describe a prefix)", message)
    return n_truncated


def extract_hidden_states(
    model,
    tokenizer,
    statements: list[str],
    layers: list[int],
    *,
    batch_size: int = 32,
    max_length: int = 128,
    token: str = "last",
    special_tokens: str = "auto",
    progress: bool = True,
) -> dict[int, np.ndarray]:
    """{layer: (n_statements, hidden) float32} in the order of ``statements``; layer 0 = embeddings.

    Statements are tokenised by ``trusttrace.tokens.encode_statements`` (``special_tokens``: ``auto`` = the
    tokenizer's own, e.g. BOS for Llama-family models; ``none``), cut to ``max_length`` tokens.
    """
    ids, _ = encode_statements(tokenizer, statements, special_tokens=special_tokens, max_length=max_length)
    return extract_token_ids(model, tokenizer, ids, layers, batch_size=batch_size, token=token, progress=progress)


def extract_token_ids(
    model,
    tokenizer,
    input_ids: list[list[int]],
    layers: list[int],
    *,
    batch_size: int = 32,
    token: str = "last",
    progress: bool = True,
) -> dict[int, np.ndarray]:
    """{layer: (n_rows, hidden) float32} of already tokenised rows, in their order; layer 0 = embeddings.

    The batch size halves on out-of-memory instead of failing (down to 1).
    """
    import torch
    from tqdm import tqdm

    n_blocks = len(decoder_blocks(model))
    bad = [layer for layer in layers if not 0 <= layer <= n_blocks]
    if bad:
        raise TrustTraceError(f"layers {bad} out of range: this model has hidden states 0..{n_blocks}")
    device = input_device(model)
    input_ids = [list(row) for row in input_ids]
    lengths = np.array([len(ids) for ids in input_ids])
    if (lengths == 0).any():
        raise TrustTraceError(f"{int((lengths == 0).sum())} statements tokenise to nothing")
    outputs = {layer: None for layer in layers}
    last_block = {}
    hook = decoder_blocks(model)[-1].register_forward_hook(
        lambda module, args, output: last_block.__setitem__("h", _block_output(output))
    )
    try:
        pending = length_sorted_batches(lengths, batch_size)
        bar = tqdm(total=len(input_ids), desc="extract", disable=not progress, file=sys.stderr, mininterval=5)
        while pending:
            rows = pending.pop(0)
            batch = tokenizer.pad({"input_ids": [input_ids[i] for i in rows]}, return_tensors="pt")
            try:
                with torch.no_grad():
                    result = model(
                        input_ids=batch["input_ids"].to(device),
                        attention_mask=batch["attention_mask"].to(device),
                        output_hidden_states=True,
                    )
            except (RuntimeError, torch.OutOfMemoryError) as error:
                requeue_halves(error, rows, pending, device, "extraction")
                continue
            states = list(result.hidden_states[:n_blocks]) + [last_block["h"]]
            for layer in layers:
                picked = select_tokens(states[layer], batch["attention_mask"], token).float().cpu().numpy()
                if outputs[layer] is None:
                    outputs[layer] = np.empty((len(input_ids), picked.shape[1]), dtype=np.float32)
                outputs[layer][rows] = picked
            bar.update(len(rows))
        bar.close()
    finally:
        hook.remove()
    return outputs


def write_activation_shards(
    model,
    tokenizer,
    data,
    output_dir,
    *,
    layers: list[int],
    extraction: dict,
    batch_size: int,
    cell: dict,
    record: dict,
) -> dict:
    """Extract every layer of ``layers`` for the statements of ``data`` (the prepared dimension table) and write
    one shard per layer into ``output_dir``, then the manifest (last: a directory without one is unfinished).

    Too many statements cut to ``extraction["max_length"]`` fail before any forward pass. Returns the manifest.
    """
    from pathlib import Path

    from trusttrace import layout
    from trusttrace.io import mark_compute_start
    from trusttrace.shards import read_manifest, write_manifest, write_shard

    mark_compute_start()
    input_ids, truncated = encode_statements(
        tokenizer,
        data["statement"].tolist(),
        special_tokens=extraction["special_tokens"],
        max_length=extraction["max_length"],
    )
    where = f"{cell['model']}/{cell['checkpoint']}/{cell['dimension']}"
    n_truncated = check_truncation(truncated, extraction["max_length"], extraction["max_truncated_fraction"], where)
    states = extract_token_ids(model, tokenizer, input_ids, layers, batch_size=batch_size, token=extraction["token"])
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    metadata = {
        **cell,
        "token": extraction["token"],
        "special_tokens": extraction["special_tokens"],
        "max_length": extraction["max_length"],
        "weights_sha256": record["weights_sha256"],
    }
    digests = {
        layer: write_shard(
            output / layout.layer_file(layer, "parquet"),
            data["row_id"].to_numpy(),
            data["label"].to_numpy(),
            data["split"].to_numpy(),
            states[layer].astype(extraction["dtype"]),
            {**metadata, "layer": layer},
            keys={**cell, "layer": layer},
        )
        for layer in layers
    }
    summary = {**metadata, "rows": len(data), "n_truncated": n_truncated, "num_layers": record["num_layers"]}
    write_manifest(output, digests, summary)
    return read_manifest(output)
