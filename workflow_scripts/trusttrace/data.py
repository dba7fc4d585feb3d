"""Labelled statements: read and check a dimension's CSV, subsample, and split into train/test.

A dimension is any CSV with a text column and a 0/1 label column. Every way such a file can be unusable is named
here and raised as a one-line TrustTraceError before any model is loaded. No torch imports.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from trusttrace.errors import TrustTraceError

MIN_ROWS_PER_CLASS = 5  # a split needs a few rows of each class on both sides


def read_labelled_csv(path: str | Path, text_column: str = "statement", label_column: str = "label") -> pd.DataFrame:
    """Read a dimension CSV into ``row_id`` (int64, 0-based data row), ``statement`` (str), ``label`` (int8 0/1).

    Raises TrustTraceError for: a missing or unreadable file, a missing column, labels that are not 0/1 (NaN
    included), empty statements, a single class, or fewer than MIN_ROWS_PER_CLASS rows of a class.
    """
    path = Path(path)
    if not path.is_file():
        raise TrustTraceError(f"{path}: dimension CSV not found")
    try:
        # utf-8-sig strips a byte-order mark; keep_default_na=False keeps a statement like "NA" as text.
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise TrustTraceError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start}); re-save it as UTF-8")
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise TrustTraceError(f"{path}: not a readable CSV ({str(error).splitlines()[0]})")
    frame.columns = [str(c).strip() for c in frame.columns]
    for column, role in ((text_column, "text_column"), (label_column, "label_column")):
        if column not in frame.columns:
            raise TrustTraceError(
                f"{path}: no column {column!r} (the {role}); columns are {list(frame.columns)[:10]}"
            )
    raw_labels = frame[label_column].str.strip()
    numeric = pd.to_numeric(raw_labels, errors="coerce")
    bad = ~numeric.isin([0, 1])
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        raise TrustTraceError(
            f"{path}: column {label_column!r} must hold 0 or 1; {int(bad.sum())} rows do not "
            f"(first: data row {first}, value {raw_labels.iloc[first]!r})"
        )
    statements = frame[text_column].astype(str)
    empty = statements.str.strip() == ""
    if empty.any():
        first = int(np.flatnonzero(empty.to_numpy())[0])
        raise TrustTraceError(
            f"{path}: {int(empty.sum())} empty statements in column {text_column!r} (first: data row {first})"
        )
    labels = numeric.astype("int8").to_numpy()
    counts = np.bincount(labels, minlength=2)
    if (counts == 0).any():
        raise TrustTraceError(f"{path}: only one class (label counts 0: {counts[0]}, 1: {counts[1]}); need both")
    if counts.min() < MIN_ROWS_PER_CLASS:
        raise TrustTraceError(
            f"{path}: too few rows to split (label counts 0: {counts[0]}, 1: {counts[1]}; "
            f"need at least {MIN_ROWS_PER_CLASS} per class)"
        )
    return pd.DataFrame(
        {"row_id": np.arange(len(frame), dtype=np.int64), "statement": statements.to_numpy(), "label": labels}
    )


def check_dimension_csv(path: str | Path, text_column: str, label_column: str, where: str) -> None:
    """Config-time check: the CSV exists and is usable; the message names the config key too."""
    try:
        read_labelled_csv(path, text_column, label_column)
    except TrustTraceError as error:
        raise TrustTraceError(f"config error at {where}: {error}") from None


def stratified_sample(labels: np.ndarray, max_samples: int | None, seed: int) -> np.ndarray:
    """Sorted row positions of a seeded subsample of at most ``max_samples`` rows that keeps class proportions."""
    labels = np.asarray(labels)
    if max_samples is None or len(labels) <= max_samples:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    chosen = []
    classes, counts = np.unique(labels, return_counts=True)
    quotas = np.floor(counts / len(labels) * max_samples).astype(int)
    quotas[np.argsort(-(counts / len(labels) * max_samples - quotas))[: max_samples - quotas.sum()]] += 1
    for value, quota in zip(classes, quotas):
        positions = np.flatnonzero(labels == value)
        chosen.append(rng.choice(positions, size=quota, replace=False))
    return np.sort(np.concatenate(chosen))


def assign_split(labels: np.ndarray, test_fraction: float, seed: int) -> np.ndarray:
    """A shuffled, stratified train/test assignment: an array of ``"train"``/``"test"`` strings.

    Each class contributes round(test_fraction * n_class) test rows (at least one), drawn at random: the
    original code's unshuffled first-80% split let file order leak into the split.
    """
    labels = np.asarray(labels)
    split = np.full(len(labels), "train", dtype=object)
    rng = np.random.default_rng(seed)
    for value in np.unique(labels):
        positions = np.flatnonzero(labels == value)
        n_test = int(round(test_fraction * len(positions)))
        if n_test < 1 or len(positions) - n_test < 1:
            raise TrustTraceError(
                f"class {value} has {len(positions)} rows: too few for test_fraction {test_fraction}"
            )
        split[rng.permutation(positions)[:n_test]] = "test"
    return split


def prepare_dimension(
    csv_path: str | Path,
    *,
    text_column: str = "statement",
    label_column: str = "label",
    max_samples: int | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> pd.DataFrame:
    """Read, subsample and split one dimension: ``row_id, statement, label, split`` in a seeded shuffled order."""
    frame = read_labelled_csv(csv_path, text_column, label_column)
    frame = frame.iloc[stratified_sample(frame["label"].to_numpy(), max_samples, seed)]
    frame = frame.assign(split=assign_split(frame["label"].to_numpy(), test_fraction, seed))
    order = np.random.default_rng(seed + 1).permutation(len(frame))
    return frame.iloc[order].reset_index(drop=True)
