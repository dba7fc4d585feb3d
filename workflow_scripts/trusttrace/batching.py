"""Batches that shrink instead of failing: shared by extraction and steering scoring. No torch import at load."""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)


def is_out_of_memory(error: BaseException) -> bool:
    return "out of memory" in str(error).lower() or type(error).__name__ == "OutOfMemoryError"


def requeue_halves(error: BaseException, rows: np.ndarray, pending: list, device, what: str) -> None:
    """After ``error`` on a batch of ``rows``: put its two halves at the front of ``pending`` if it was an
    out-of-memory error on more than one row; re-raise anything else."""
    if not is_out_of_memory(error) or len(rows) == 1:
        raise error
    if getattr(device, "type", None) == "cuda":
        import torch

        torch.cuda.empty_cache()
    half = len(rows) // 2
    log.warning("out of memory at %s batch size %d; retrying at %d", what, len(rows), half)
    pending[:0] = [rows[:half], rows[half:]]
