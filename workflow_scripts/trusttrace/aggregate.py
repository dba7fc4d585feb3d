"""From per-cell metrics files to tidy tables: one row per (model, checkpoint, dimension, layer, metric) and the
pre-training loss curve (the fitting and compression phases are in ``trusttrace.phases``).

Pure functions over paths, dicts and DataFrames; no snakemake object and no torch.

Inputs are the cell directories the cell rules write (``results/{probe,mi,steering}/{model}/{checkpoint}/
{dimension}/layer=L.json``); every file repeats its cell's keys (model, checkpoint, step, tokens, dimension,
layer). A file with a ``degenerate`` key carries no metrics: it is listed, never plotted.

Tables are written through pyarrow with an explicit schema (strings, int64, float64, bool; nulls where a value is
missing) and without pandas metadata, so pandas, polars and duckdb read them the same way.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from trusttrace import layout
from trusttrace.errors import TrustTraceError

# The metrics each analysis contributes (other keys in a cell file are the cell's keys or its settings).
PROBE_METRICS = (
    "accuracy",
    "validation_accuracy",
    "majority_baseline",
    "permuted_label_accuracy",
    "accuracy_above_permuted",
    "n_test",
    "n_validation",
    "mass_mean_accuracy",
    "v_information_bits",
    "h_y_bits",
    "probe_cross_entropy_bits",
)
MI_METRICS = ("hsic_ixt", "hsic_iyt", "hsic_ixt_median", "hsic_iyt_median", "cka_xt", "cka_yt")
# Steering records (trusttrace.steering.evaluate_cell) are per alpha; their metrics get a ``steering_`` prefix
# (``accuracy`` would clash with the probe's) and a ``_validation`` suffix for the validation rows. Effects are per
# measure and alpha > 0: ``steering_{kind}_{measure}[_validation]``; see trusttrace.steering_selection.
STEERING_ALPHA_METRICS = (
    "margin",
    "margin_change",
    "fluency",
    "fluency_change",
    "prompted_margin",
    "prompted_margin_change",
    "accuracy",
    "accuracy_change",
    "answer_bias",
    "answer_mass",
)
# effect-entry key -> (metric kind, ci_low key, ci_high key)
STEERING_EFFECT_METRICS = {
    "effect": ("effect", "effect_ci_low", "effect_ci_high"),
    "random_mean": ("random", None, None),
    "random_sd": ("random_sd", None, None),
    "effect_vs_random": ("effect_vs_random", "effect_vs_random_ci_low", "effect_vs_random_ci_high"),
}
# measure-independent effect-entry keys, written once (from the likelihood-margin entry)
STEERING_FLUENCY_METRICS = ("fluency_cost", "random_fluency_cost")
STEERING_CELL_METRICS = ("selection_on_test_half",)
# metric -> (ci_low key, ci_high key) in the cell file
CI_KEYS = {
    "accuracy": ("accuracy_ci_low", "accuracy_ci_high"),
    "hsic_ixt": ("hsic_ixt_ci_low", "hsic_ixt_ci_high"),
    "hsic_iyt": ("hsic_iyt_ci_low", "hsic_iyt_ci_high"),
}

SOURCES = ("probe", "mi", "steering")
CELL_KEYS = ("model", "checkpoint", "step", "tokens", "dimension", "layer")

# The type of every column a table shares with others; each schema lists its columns in order.
COLUMN_TYPES = {
    "model": pa.string(),
    "checkpoint": pa.string(),
    "checkpoint_index": pa.int64(),
    "step": pa.int64(),
    "tokens": pa.float64(),
    "dimension": pa.string(),
    "layer": pa.int64(),
    "source": pa.string(),
    "metric": pa.string(),
    "alpha": pa.float64(),
    "value": pa.float64(),
    "ci_low": pa.float64(),
    "ci_high": pa.float64(),
    "reason": pa.string(),
    "loss": pa.float64(),
    "lr": pa.float64(),
}


def table_schema(*columns: str | tuple[str, pa.DataType]) -> pa.Schema:
    """A table's schema: each column a name from ``COLUMN_TYPES`` or a (name, type) pair of its own."""
    return pa.schema([(c, COLUMN_TYPES[c]) if isinstance(c, str) else c for c in columns])


METRICS_SCHEMA = table_schema(
    "model", "checkpoint", "checkpoint_index", "step", "tokens", "dimension", "layer", "source", "metric", "alpha",
    "value", "ci_low", "ci_high",
)  # fmt: skip
DEGENERATE_SCHEMA = table_schema("model", "checkpoint", "step", "dimension", "layer", "source", "reason")
LOSS_SCHEMA = table_schema("model", "checkpoint", "step", "tokens", "loss", "lr")

# ---------------------------------------------------------------------------------------------------------------
# Reading cells


def read_cell_directory(directory: str | Path, source: str) -> list[dict]:
    """Every ``layer=L.json`` in one cell directory, in layer order, each with ``source`` added."""
    directory = Path(directory)
    if not directory.is_dir():
        raise TrustTraceError(f"{directory}: cell directory missing (run the {source} rule for it first)")
    records = []
    for path in sorted(directory.glob("layer=*.json"), key=layout.layer_of):
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise TrustTraceError(f"{path}: not valid JSON ({error}); delete the directory and rerun") from None
        missing = [key for key in ("model", "checkpoint", "dimension", "layer") if key not in record]
        if missing:
            raise TrustTraceError(f"{path}: missing cell keys {missing}")
        record["source"] = source
        records.append(record)
    return records


def read_cells(directories: Iterable[str | Path], source: str) -> list[dict]:
    if source not in SOURCES:
        raise TrustTraceError(f"unknown cell source {source!r} (one of {SOURCES})")
    return [record for directory in directories for record in read_cell_directory(directory, source)]


def _number(value) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TrustTraceError(f"expected a number, got {value!r}")
    return float(value)


def _optional_int(value):
    return None if value is None else int(value)


def _optional_float(value):
    return None if value is None else float(value)


def tidy_rows(record: dict) -> list[dict]:
    """The metric rows of one non-degenerate cell record (empty for a degenerate one)."""
    if "degenerate" in record:
        return []
    base = {
        "model": str(record["model"]),
        "checkpoint": str(record["checkpoint"]),
        "step": _optional_int(record.get("step")),
        "tokens": _optional_float(record.get("tokens")),
        "dimension": str(record["dimension"]),
        "layer": int(record["layer"]),
        "source": record["source"],
    }
    rows = []

    def add(metric, value, alpha=None, ci=(None, None)):
        rows.append(
            {
                **base,
                "metric": metric,
                "alpha": alpha,
                "value": _number(value),
                "ci_low": _optional_float(ci[0]),
                "ci_high": _optional_float(ci[1]),
            }
        )

    if record["source"] == "steering":
        for entries, suffix in (
            (record.get("by_alpha", []), ""),
            (record.get("by_alpha_validation", []), "_validation"),
        ):
            for entry in entries:
                for key in STEERING_ALPHA_METRICS:
                    if key in entry:
                        add(f"steering_{key}{suffix}", entry[key], alpha=float(entry["alpha"]))
        for entry in record.get("effects", []):
            suffix = "" if entry["split"] == "test" else "_validation"
            measure, alpha = entry["measure"], float(entry["alpha"])
            for key, (kind, low, high) in STEERING_EFFECT_METRICS.items():
                ci = (entry.get(low), entry.get(high)) if low else (None, None)
                add(f"steering_{kind}_{measure}{suffix}", entry[key], alpha=alpha, ci=ci)
            if measure == "likelihood_margin":
                for key in STEERING_FLUENCY_METRICS:
                    add(f"steering_{key}{suffix}", entry[key], alpha=alpha)
        for key in STEERING_CELL_METRICS:
            if key in record:
                add(f"steering_{key}", float(record[key]))
        return rows
    for key in PROBE_METRICS if record["source"] == "probe" else MI_METRICS:
        if key in record:
            low, high = CI_KEYS.get(key, (None, None))
            add(key, record[key], ci=(record.get(low), record.get(high)))
    return rows


def metrics_table(records: Sequence[dict]) -> pd.DataFrame:
    """Tidy table of every metric of every non-degenerate cell.

    ``checkpoint_index`` is the checkpoint's position among its model's checkpoints in input order (the config's
    order when the records come from ``cell_directories``): an x-axis for checkpoints that have no step.
    """
    rows = [row for record in records for row in tidy_rows(record)]
    order: dict[tuple[str, str], int] = {}
    for record in records:
        model = str(record["model"])
        key = (model, str(record["checkpoint"]))
        if key not in order:
            order[key] = sum(1 for m, _ in order if m == model)
    for row in rows:
        row["checkpoint_index"] = order[(row["model"], row["checkpoint"])]
    table = pa.Table.from_pylist(rows, schema=METRICS_SCHEMA) if rows else METRICS_SCHEMA.empty_table()
    return table.to_pandas()


def degenerate_table(records: Sequence[dict]) -> pd.DataFrame:
    """One row per degenerate cell: where it is and why it carries no metrics."""
    rows = [
        {
            "model": str(r["model"]),
            "checkpoint": str(r["checkpoint"]),
            "step": _optional_int(r.get("step")),
            "dimension": str(r["dimension"]),
            "layer": int(r["layer"]),
            "source": r["source"],
            "reason": str(r["degenerate"]),
        }
        for r in records
        if "degenerate" in r
    ]
    table = pa.Table.from_pylist(rows, schema=DEGENERATE_SCHEMA) if rows else DEGENERATE_SCHEMA.empty_table()
    return table.to_pandas()


def pretrain_loss_table(
    loss_files: dict[tuple[str, str], str | Path], tokens_per_step: dict[str, float]
) -> pd.DataFrame:
    """Concatenate per-checkpoint loss TSVs (step, loss, lr) into one curve per model.

    ``loss_files`` maps (model, checkpoint) -> TSV path; each checkpoint's file holds the steps trained since the
    previous checkpoint, so the concatenation is the whole curve. ``tokens_per_step``: batch_size x seq_len.
    """
    frames = []
    for (model, checkpoint), path in loss_files.items():
        frame = pd.read_csv(path, sep="\t")
        missing = {"step", "loss", "lr"} - set(frame.columns)
        if missing:
            raise TrustTraceError(f"{path}: loss table lacks columns {sorted(missing)}")
        frame = frame[["step", "loss", "lr"]].copy()
        frame.insert(0, "checkpoint", checkpoint)
        frame.insert(0, "model", model)
        frame["tokens"] = frame["step"].astype("float64") * float(tokens_per_step[model])
        frames.append(frame)
    if not frames or all(len(f) == 0 for f in frames):
        return LOSS_SCHEMA.empty_table().to_pandas()
    loss = pd.concat([f for f in frames if len(f)], ignore_index=True)
    loss = loss.sort_values(["model", "step"]).drop_duplicates(["model", "step"], keep="last")
    rows = loss[["model", "checkpoint", "step", "tokens", "loss", "lr"]].to_dict("records")
    return pa.Table.from_pylist(rows, schema=LOSS_SCHEMA).to_pandas()


# ---------------------------------------------------------------------------------------------------------------
# Writing tables


def write_table(frame: pd.DataFrame, schema: pa.Schema, parquet_path: str | Path, csv_path: str | Path | None = None):
    """Parquet (plain arrow types, no pandas metadata) and optionally CSV of ``frame`` under ``schema``.

    CSV has no list type: a list column (e.g. findings' ``fitting_layers``) is written as ``1;2;3``."""
    table = to_arrow(frame, schema)
    Path(parquet_path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, parquet_path)
    if csv_path is not None:
        pa_csv.write_csv(_csv_friendly(table), csv_path)


def _csv_friendly(table: pa.Table) -> pa.Table:
    for index, field in enumerate(table.schema):
        if pa.types.is_list(field.type):
            joined = [None if v is None else ";".join(str(x) for x in v) for v in table.column(index).to_pylist()]
            table = table.set_column(index, field.name, pa.array(joined, type=pa.string()))
    return table


def to_arrow(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    columns = {}
    for field in schema:
        values = frame[field.name].tolist() if field.name in frame else [None] * len(frame)
        columns[field.name] = pa.array([_clean(v) for v in values], type=field.type)
    return pa.table(columns, schema=schema)


def _clean(value):
    """pandas missing values (NaN in object/int columns, pd.NA, NaT) -> None; numpy scalars -> Python."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):
        return _clean(value.item())
    return value
