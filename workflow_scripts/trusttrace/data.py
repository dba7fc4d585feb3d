"""Labelled statements: read and check a dimension's CSV, group, subsample, and split into train/validation/test.

A dimension is any CSV with a text column and a 0/1 label column. Every way such a file can be unusable is named
here and raised as a one-line TrustTraceError before any model is loaded. No torch imports.

Rows are counted in messages as *data rows*, from 1, the header not counted (``row_id`` in the outputs is the
same row counted from 0).

Groups: rows that must not be separated (exact duplicates, the clean and perturbed copies of an SST-2 sentence,
the answers to one TruthfulQA question) share a group key (``group_by``), and whole groups are subsampled and
assigned to a split, so that no group has rows on both sides of a split.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd

from trusttrace.errors import TrustTraceError

MIN_ROWS_PER_CLASS = 5  # a file needs a few rows of each class to be split at all
# Each split (validation only when its fraction is > 0) needs this many rows of each class: with one, a class's
# accuracy is a single coin flip and a per-split metric cannot vary within the class.
MIN_SPLIT_ROWS_PER_CLASS = 2
SPLITS = ("train", "validation", "test")
GROUP_BY_HELP = "exact, casefold, none, prefix:<separator> or column:<name>"
TIE_STRATUM = -1  # the stratum of a group with as many rows of label 0 as of label 1


def _bad_utf8_row(raw: bytes, start: int) -> int:
    """The 1-based data row (0 = the header) holding the byte at offset ``start`` of an undecodable CSV."""
    prefix = raw[:start].decode("utf-8-sig", errors="replace")
    # A sentinel character makes the row holding the bad byte a record even when it starts right there; blank
    # lines are skipped, as pandas skips them.
    try:
        records = [record for record in csv.reader(io.StringIO(prefix + "x", newline="")) if record]
    except csv.Error:  # a stray quote or carriage return: count physical lines instead
        return max(prefix.count("\n"), 0)
    return len(records) - 1


def read_labelled_csv(
    path: str | Path,
    text_column: str = "statement",
    label_column: str = "label",
    extra_columns: tuple[str, ...] = (),
) -> pd.DataFrame:
    """Read a dimension CSV into ``row_id`` (int64, 0-based data row), ``statement`` (str), ``label`` (int8 0/1),
    plus each of ``extra_columns`` as str.

    Raises TrustTraceError for: a missing or unreadable file (not UTF-8: the data row with the bad bytes), a
    missing column, labels that are not 0/1 (NaN included), empty statements, a single class, or fewer than
    MIN_ROWS_PER_CLASS rows of a class.
    """
    path = Path(path)
    if not path.is_file():
        raise TrustTraceError(f"{path}: dimension CSV not found")
    try:
        # utf-8-sig strips a byte-order mark; keep_default_na=False keeps a statement like "NA" as text.
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raw = path.read_bytes()
        try:
            raw.decode("utf-8-sig")
            start, reason = error.start, error.reason  # pandas decodes in chunks: its offset may be chunk-relative
        except UnicodeDecodeError as whole:
            start, reason = whole.start, whole.reason
        row = _bad_utf8_row(raw, start)
        where = "the header" if row == 0 else f"data row {row}"
        raise TrustTraceError(
            f"{path}: not UTF-8 text ({reason} in {where}, byte {start}: {raw[start : start + 4]!r}); "
            "re-save it as UTF-8"
        ) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise TrustTraceError(f"{path}: not a readable CSV ({str(error).splitlines()[0]})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    roles = [(text_column, "text_column"), (label_column, "label_column")]
    roles += [(column, "group_by column") for column in extra_columns]
    for column, role in roles:
        if column not in frame.columns:
            raise TrustTraceError(f"{path}: no column {column!r} (the {role}); columns are {list(frame.columns)[:10]}")
    raw_labels = frame[label_column].str.strip()
    numeric = pd.to_numeric(raw_labels, errors="coerce")
    bad = ~numeric.isin([0, 1])
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        raise TrustTraceError(
            f"{path}: column {label_column!r} must hold 0 or 1; {int(bad.sum())} rows do not "
            f"(first: data row {first + 1}, value {raw_labels.iloc[first]!r})"
        )
    statements = frame[text_column].astype(str)
    empty = statements.str.strip() == ""
    if empty.any():
        first = int(np.flatnonzero(empty.to_numpy())[0])
        raise TrustTraceError(
            f"{path}: {int(empty.sum())} empty statements in column {text_column!r} (first: data row {first + 1})"
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
    columns = {"row_id": np.arange(len(frame), dtype=np.int64), "statement": statements.to_numpy(), "label": labels}
    for column in extra_columns:
        columns[f"extra:{column}"] = frame[column].astype(str).to_numpy()
    return pd.DataFrame(columns)


# ---- groups and conflicts ---------------------------------------------------------------------------------------


def parse_group_by(group_by: str) -> tuple[str, str | None]:
    """``"prefix:\\t"`` -> ``("prefix", "\\t")``, ``"exact"`` -> ``("exact", None)``; TrustTraceError otherwise."""
    kind, _, argument = str(group_by).partition(":")
    if kind in ("exact", "casefold", "none") and not _:
        return kind, None
    if kind in ("prefix", "column") and argument:
        return kind, argument
    raise TrustTraceError(f"group_by: {group_by!r} is not one of {GROUP_BY_HELP}")


def normalise_casefold(text: str) -> str:
    """Case folded, whitespace runs collapsed to one space, ends stripped: ``" A  Cat "`` -> ``"a cat"``."""
    return " ".join(text.casefold().split())


def group_keys(frame: pd.DataFrame, group_by: str, path: str | Path = "") -> np.ndarray:
    """The group key of each row of a ``read_labelled_csv`` frame (object array of str).

    ``exact``: the statement; ``casefold``: the statement case folded with whitespace normalised;
    ``prefix:<sep>``: the text before the first ``<sep>`` (the whole statement when it has none);
    ``column:<name>``: that column's value; ``none``: the row itself (every row its own group).
    """
    kind, argument = parse_group_by(group_by)
    statements = frame["statement"]
    if kind == "exact":
        return statements.to_numpy(dtype=object)
    if kind == "casefold":
        return statements.map(normalise_casefold).to_numpy(dtype=object)
    if kind == "none":
        return np.array([f"row {i}" for i in frame["row_id"]], dtype=object)
    if kind == "prefix":
        has_separator = statements.str.contains(argument, regex=False)
        if not has_separator.any():
            raise TrustTraceError(
                f"{path}: group_by {group_by!r}: no statement contains the separator {argument!r} (in YAML, write "
                'a tab as "prefix:\\t" in double quotes)'
            )
        return statements.str.split(argument, n=1, regex=False).str[0].to_numpy(dtype=object)
    values = frame[f"extra:{argument}"]
    empty = values.str.strip() == ""
    if empty.any():
        first = int(np.flatnonzero(empty.to_numpy())[0])
        raise TrustTraceError(
            f"{path}: group_by {group_by!r}: {int(empty.sum())} rows have an empty {argument!r} "
            f"(first: data row {first + 1})"
        )
    return values.to_numpy(dtype=object)


def group_ids(frame: pd.DataFrame, group_by: str, path: str | Path = "") -> np.ndarray:
    """(n,) int64 group of each row, numbered 0..G-1 in order of first appearance.

    Rows with equal ``group_keys`` share a group, and so do identical statements (except with ``none``): with
    ``column:<name>``, two copies of one statement under different keys join both keys' rows into one group
    (connected components), so an exact duplicate can never sit on both sides of a split.
    """
    keys = _group_ids(group_keys(frame, group_by, path), len(frame))
    if parse_group_by(group_by)[0] != "column":
        return keys  # exact, casefold and prefix keys are equal for identical statements already; none: no grouping
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    statements = _group_ids(frame["statement"].to_numpy(dtype=object), len(frame))
    n_keys = int(keys.max()) + 1
    # A graph over keys and statements: each row joins its key to its statement.
    edges = coo_matrix((np.ones(len(frame)), (keys, n_keys + statements)), shape=(n_keys + statements.max() + 1,) * 2)
    _, component = connected_components(edges, directed=False)
    return _group_ids(component[keys], len(frame))


def label_conflicts(statements: np.ndarray, labels: np.ndarray) -> list[np.ndarray]:
    """Row positions of each statement that occurs with both labels (exact text), in file order."""
    frame = pd.DataFrame({"statement": statements, "label": labels})
    mixed = np.flatnonzero(frame.groupby("statement", sort=False)["label"].transform("nunique").to_numpy() > 1)
    if not len(mixed):
        return []
    within = frame.iloc[mixed].groupby("statement", sort=False).indices.values()
    return sorted((mixed[np.sort(rows)] for rows in within), key=lambda rows: rows[0])


def _describe_conflicts(conflicts: list[np.ndarray], row_ids: np.ndarray, limit: int = 5) -> str:
    shown = "; ".join(" and ".join(str(int(row_ids[p]) + 1) for p in rows) for rows in conflicts[:limit])
    more = f"; and {len(conflicts) - limit} more" if len(conflicts) > limit else ""
    return f"data rows {shown}{more}"


# ---- stratified group sampling and splitting --------------------------------------------------------------------


def group_strata(labels: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """(n_groups,) stratum of each group id 0..G-1: its majority label, TIE_STRATUM when 0s and 1s are as many."""
    sizes = np.bincount(groups)
    ones = np.bincount(groups, weights=np.asarray(labels, dtype=float), minlength=len(sizes))
    strata = (2 * ones > sizes).astype(np.int64)
    strata[2 * ones == sizes] = TIE_STRATUM
    return strata


def _group_ids(groups: np.ndarray | None, n_rows: int) -> np.ndarray:
    """Group ids renumbered 0..G-1 in order of first appearance (default: every row its own group)."""
    if groups is None:
        return np.arange(n_rows, dtype=np.int64)
    return pd.factorize(pd.Series(np.asarray(groups)), sort=False)[0].astype(np.int64)


def stratified_group_order(groups: np.ndarray, labels: np.ndarray, seed: int, stream: int) -> np.ndarray:
    """Group ids 0..G-1 in a seeded random order that spreads every stratum evenly along it.

    Within each stratum (groups by majority label) the groups are shuffled and laid end to end; a group's place is
    the midpoint of its rows as a fraction of the stratum's rows. Sorting all groups by that place interleaves the
    strata, so any prefix of the order holds each stratum in proportion (up to one group). ``stream`` keeps the
    subsample's and the split's random orders independent under one seed.
    """
    sizes = np.bincount(groups)
    strata = group_strata(labels, groups)
    rng = np.random.default_rng([seed, stream])
    place = np.empty(len(sizes))
    for stratum in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == stratum))
        member_sizes = sizes[members]
        place[members] = (np.cumsum(member_sizes) - member_sizes / 2) / member_sizes.sum()
    return np.lexsort((strata, place))  # equal places: by stratum, so the order is fully determined


def _cut(sizes: np.ndarray, boundaries: list[float]) -> np.ndarray:
    """Which segment (0..len(boundaries)) each group falls in when groups are laid end to end in order: the one
    holding its midpoint. With one-row groups the first segment holds exactly ``boundaries[0]`` rows, etc."""
    midpoints = np.cumsum(sizes) - sizes / 2
    return np.searchsorted(np.asarray(boundaries, dtype=float), midpoints, side="right")


def _round_half_up(value: float) -> int:
    return int(np.floor(value + 0.5))


def _stratified_rows(y: np.ndarray, max_samples: int, seed) -> np.ndarray:
    """Sorted row indices of a class-stratified subsample of at most ``max_samples`` rows (seeded).

    All rows (``arange(len(y))``) when ``len(y) <= max_samples``. Otherwise exactly ``max_samples`` rows, class
    counts proportional to the full data (largest-remainder rounding, so each count is within 1 of
    ``n_class * max_samples / len(y)``; every class keeps at least one row when ``max_samples`` allows).
    """
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise TrustTraceError(f"y must be a 1-D label vector for subsampling, got shape {arr.shape}")
    try:
        max_samples = int(max_samples)
    except (TypeError, ValueError):
        raise TrustTraceError(f"max_samples must be an integer >= 1, got {max_samples!r}") from None
    if max_samples < 1:
        raise TrustTraceError(f"max_samples must be an integer >= 1, got {max_samples}")
    n = arr.shape[0]
    if n <= max_samples:
        return np.arange(n)
    classes, inverse = np.unique(arr, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    counts = np.bincount(inverse, minlength=classes.size)
    exact = counts * (max_samples / n)
    quota = np.floor(exact).astype(np.int64)
    short = max_samples - int(quota.sum())
    order = np.lexsort((np.arange(classes.size), -(exact - quota)))  # largest remainder first, ties by class
    quota[order[:short]] += 1
    if max_samples >= classes.size:  # keep every class represented: move one row from the largest quota
        for k in np.flatnonzero(quota == 0):
            donor = int(np.argmax(quota))
            quota[donor] -= 1
            quota[k] += 1
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(inverse == k), size=int(q), replace=False) for k, q in enumerate(quota)]
    return np.sort(np.concatenate(picked))


def stratified_sample(
    labels: np.ndarray, max_samples: int | None, seed: int, groups: np.ndarray | None = None
) -> np.ndarray:
    """Sorted row positions of a seeded subsample of about ``max_samples`` rows that keeps class proportions.

    Without ``groups``: exactly ``max_samples`` rows by largest-remainder quotas (``_stratified_rows``; ``seed`` may
    be a sequence, e.g. ``[seed, k]`` for the k-th of several draws). With ``groups`` (a group key per row) whole
    groups are taken: the first groups
    of ``stratified_group_order`` whose rows' midpoint falls within ``max_samples``. Exact with one-row groups
    (each class within one row of its share), within half a group otherwise.
    """
    if groups is None:
        return np.arange(len(labels)) if max_samples is None else _stratified_rows(labels, max_samples, seed)
    labels = np.asarray(labels)
    if max_samples is None or len(labels) <= max_samples:
        return np.arange(len(labels))
    groups = _group_ids(groups, len(labels))
    order = stratified_group_order(groups, labels, seed, stream=0)
    chosen = order[_cut(np.bincount(groups)[order], [max_samples]) == 0]
    return np.flatnonzero(np.isin(groups, chosen))


def assign_split(
    labels: np.ndarray,
    test_fraction: float,
    seed: int,
    *,
    validation_fraction: float = 0.0,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """A shuffled, stratified, grouped assignment: an array of ``"train"``/``"validation"``/``"test"`` strings.

    The groups, in ``stratified_group_order``, are laid end to end: the first round(test_fraction x rows) rows go
    to test, the next round(validation_fraction x rows) to validation, the rest to train, each group wholly where
    its midpoint falls. With one-row groups the split sizes are exact and each class is within one row of its
    share; with larger groups, within half a group. (The original code's unshuffled first-80% split let file order
    leak into the split.) Checks that every split (validation only when its fraction is > 0) has
    MIN_SPLIT_ROWS_PER_CLASS rows of each class.
    """
    labels = np.asarray(labels)
    groups = _group_ids(groups, len(labels))
    order = stratified_group_order(groups, labels, seed, stream=1)
    n_test = _round_half_up(test_fraction * len(labels))
    n_validation = _round_half_up(validation_fraction * len(labels))
    group_split = np.empty(len(order), dtype=object)
    segment = _cut(np.bincount(groups)[order], [n_test, n_test + n_validation])
    group_split[order] = np.array(["test", "validation", "train"], dtype=object)[segment]
    split = group_split[groups]
    needed = ["train", "test"] + (["validation"] if validation_fraction > 0 else [])
    for name in needed:
        for value in (0, 1):
            have = int(((split == name) & (labels == value)).sum())
            if have < MIN_SPLIT_ROWS_PER_CLASS:
                counts = np.bincount(labels, minlength=2)
                raise TrustTraceError(
                    f"the {name} split gets {have} rows of class {value} (need {MIN_SPLIT_ROWS_PER_CLASS}): too few "
                    f"rows or groups (label counts 0: {counts[0]}, 1: {counts[1]}; {len(np.unique(groups))} groups) "
                    f"for test_fraction {test_fraction} and validation_fraction {validation_fraction}"
                )
    return split


# ---- one dimension ----------------------------------------------------------------------------------------------


def prepare_dimension_with_report(
    csv_path: str | Path,
    *,
    text_column: str = "statement",
    label_column: str = "label",
    max_samples: int | None = None,
    test_fraction: float = 0.2,
    validation_fraction: float = 0.2,
    seed: int = 0,
    group_by: str = "exact",
    on_conflict: str = "error",
) -> tuple[pd.DataFrame, dict]:
    """Read, check, group, subsample and split one dimension.

    Returns (``row_id, statement, label, split, group`` in a seeded shuffled order, a report). ``group`` is an
    int64 group id (groups numbered in order of their first row in the file). Statements that occur with both
    labels (exact text) raise an error naming their data rows, or with ``on_conflict: drop`` are removed (all
    their rows) and counted. The report holds counts per split and label, groups, conflicts and duplicates.
    """
    if on_conflict not in ("error", "drop"):
        raise TrustTraceError(f"on_conflict: {on_conflict!r} is not 'error' or 'drop'")
    if not (0 < test_fraction < 1 and 0 <= validation_fraction < 1 and test_fraction + validation_fraction < 1):
        raise TrustTraceError(
            f"split: test_fraction {test_fraction} + validation_fraction {validation_fraction} must leave rows for "
            "training (each in [0, 1), test > 0, sum < 1)"
        )
    kind, argument = parse_group_by(group_by)
    path = Path(csv_path)
    frame = read_labelled_csv(path, text_column, label_column, (argument,) if kind == "column" else ())
    n_read = len(frame)
    statements, labels = frame["statement"].to_numpy(dtype=object), frame["label"].to_numpy()
    conflicts = label_conflicts(statements, labels)
    dropped_rows = 0
    if conflicts:
        if on_conflict == "error":
            raise TrustTraceError(
                f"{path}: {len(conflicts)} statements occur with both labels "
                f"({_describe_conflicts(conflicts, frame['row_id'].to_numpy())}); fix the file or set on_conflict: drop"
            )
        drop = np.concatenate(conflicts)
        dropped_rows = len(drop)
        frame = frame.drop(index=frame.index[drop]).reset_index(drop=True)
        counts = np.bincount(frame["label"].to_numpy(), minlength=2)
        if counts.min() < MIN_ROWS_PER_CLASS:
            raise TrustTraceError(
                f"{path}: too few rows left after dropping {dropped_rows} conflicting rows (label counts 0: "
                f"{counts[0]}, 1: {counts[1]}; need at least {MIN_ROWS_PER_CLASS} per class)"
            )
    # Rows repeating an earlier row's statement and label: kept, in that row's group (any group_by but none).
    duplicate_rows = int(frame.duplicated(["statement", "label"]).sum())
    groups = group_ids(frame, group_by, path)
    labels = frame["label"].to_numpy()
    frame = frame.assign(group=groups).iloc[stratified_sample(labels, max_samples, seed, groups)]
    groups = _group_ids(frame["group"].to_numpy(), len(frame))  # renumbered 0..G-1 after the sample
    frame = frame.assign(group=groups)
    try:
        split = assign_split(
            frame["label"].to_numpy(), test_fraction, seed, validation_fraction=validation_fraction, groups=groups
        )
    except TrustTraceError as error:
        raise TrustTraceError(f"{path}: {error}") from None
    frame = frame.assign(split=split)
    order = np.random.default_rng(seed + 1).permutation(len(frame))
    frame = frame.iloc[order].reset_index(drop=True)[["row_id", "statement", "label", "split", "group"]]
    report = data_report(
        frame,
        path=path,
        group_by=group_by,
        on_conflict=on_conflict,
        n_read=n_read,
        duplicate_rows=duplicate_rows,
        conflicts=len(conflicts),
        dropped_rows=dropped_rows,
    )
    report.update(
        test_fraction=test_fraction, validation_fraction=validation_fraction, seed=seed, max_samples=max_samples
    )
    return frame, report


def data_report(
    frame: pd.DataFrame, *, path, group_by, on_conflict, n_read, duplicate_rows, conflicts, dropped_rows
) -> dict:
    """Counts of a prepared dimension, for ``results/data/{dimension}.json``."""
    sizes = frame.groupby("group")["label"].agg(["size", "nunique"])
    counts = {
        name: {str(value): int(((frame["split"] == name) & (frame["label"] == value)).sum()) for value in (0, 1)}
        for name in SPLITS
    }
    groups_per_split = {name: int(frame.loc[frame["split"] == name, "group"].nunique()) for name in SPLITS}
    return {
        "csv": str(path),
        "group_by": group_by,
        "on_conflict": on_conflict,
        "rows_read": int(n_read),
        "rows": len(frame),
        "counts": counts,
        "n_groups": len(sizes),
        "groups_per_split": groups_per_split,
        "rows_in_multi_row_groups": int(sizes.loc[sizes["size"] > 1, "size"].sum()),
        "mixed_label_groups": int((sizes["nunique"] > 1).sum()),
        "duplicate_rows": int(duplicate_rows),
        "conflicting_statements": int(conflicts),
        "conflict_rows_dropped": int(dropped_rows),
    }


def prepare_dimension(csv_path: str | Path, **settings) -> pd.DataFrame:
    """``prepare_dimension_with_report(...)`` without the report."""
    return prepare_dimension_with_report(csv_path, **settings)[0]


def check_dimension(path: str | Path, spec: dict, split: dict, where: str) -> None:
    """Config-time check: the whole preparation runs (it takes milliseconds), so a bad file, group_by, conflict or
    a split too small fails at load; the message names the config key too."""
    try:
        prepare_dimension_with_report(path, **dimension_settings(spec, split))
    except TrustTraceError as error:
        raise TrustTraceError(f"config error at {where}: {error}") from None


def dimension_settings(spec: dict, split: dict) -> dict:
    """The keyword arguments of prepare_dimension for a validated dimension spec and the split section."""
    return {
        "text_column": spec["text_column"],
        "label_column": spec["label_column"],
        "max_samples": spec["max_samples"],
        "group_by": spec["group_by"],
        "on_conflict": spec["on_conflict"],
        "test_fraction": split["test_fraction"],
        "validation_fraction": split["validation_fraction"],
        "seed": split["seed"],
    }


def check_dimension_csv(path: str | Path, text_column: str, label_column: str, where: str) -> None:
    """Config-time check of the file alone: it exists and is usable; the message names the config key too."""
    try:
        read_labelled_csv(path, text_column, label_column)
    except TrustTraceError as error:
        raise TrustTraceError(f"config error at {where}: {error}") from None


def write_prepared(frame: pd.DataFrame, report: dict, parquet_path: str | Path, json_path: str | Path) -> None:
    """The prepared table as Parquet, its report (counts, groups, conflicts) both in the Parquet's metadata and as
    a JSON file beside it."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from trusttrace.io import write_json

    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**table.schema.metadata, b"trusttrace": json.dumps(report, sort_keys=True)})
    pq.write_table(table, parquet_path)
    write_json(json_path, report)
