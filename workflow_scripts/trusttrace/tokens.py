"""Statement tokenisation shared by extraction and steering, so a vector is applied and scored in the context it
was taken in.

``special_tokens``:

* ``auto`` (default): the tokenizer's own default (``add_special_tokens=True``), as the paper's code
  (``tokenizer.encode``): Llama-family tokenizers (Amber, OLMo) prepend BOS, GPT-NeoX (Pythia) adds nothing.
  Without BOS the attention sink moves to the first real token and every activation shifts.
* ``none``: the statement's own tokens only.

No torch imports.
"""

from __future__ import annotations

import numpy as np

from trusttrace.errors import TrustTraceError

SPECIAL_TOKENS = ("auto", "none")


def encode_statements(
    tokenizer, statements: list[str], *, special_tokens: str = "auto", max_length: int = 128
) -> tuple[list[list[int]], np.ndarray]:
    """(token ids of each statement, cut to ``max_length``; (n,) bool: the statement was longer and was cut).

    A cut statement's last token is not its end, so "last token" features of such rows describe a prefix.
    """
    if special_tokens not in SPECIAL_TOKENS:
        raise TrustTraceError(f"extraction.special_tokens: {special_tokens!r} is not one of {SPECIAL_TOKENS}")
    if int(max_length) < 1:
        raise TrustTraceError(f"extraction.max_length must be >= 1, got {max_length!r}")
    add = special_tokens == "auto"
    full = tokenizer(list(statements), add_special_tokens=add, truncation=False)["input_ids"]
    truncated = np.array([len(ids) > max_length for ids in full], dtype=bool)
    if truncated.any():
        # Re-encode with the tokenizer's own truncation so special tokens it adds at the end (if any) survive.
        cut = tokenizer(list(statements), add_special_tokens=add, truncation=True, max_length=int(max_length))
        ids = [cut["input_ids"][i] if truncated[i] else full[i] for i in range(len(full))]
    else:
        ids = list(full)
    empty = [i for i, row in enumerate(ids) if len(row) == 0]
    if empty:
        raise TrustTraceError(f"{len(empty)} statements tokenise to nothing (first: position {empty[0]})")
    return ids, truncated
