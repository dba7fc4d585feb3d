"""The findings table: one row per model x dimension, the statements ``summary.md`` makes, in machine-readable form.

Definitions (every number has a baseline and an interval; nothing is chosen on the rows it is reported on):

* **Selected layer of a checkpoint**: the layer whose probe scores highest on the *validation* split (ties: the
  lowest layer). Its *test* accuracy is reported with the cell's Wilson interval. Without validation rows the
  layer is chosen on test accuracy and the interval is widened by Bonferroni over the layers searched
  (level ``1 - (1 - ci_level) / n_layers``); the ``selection`` column says which.
* **Separable** at a checkpoint: the selected layer's test-accuracy interval lies above the **majority baseline**
  (the test split's majority-class rate, what a constant predictor scores; 0.5 only for balanced data).
  ``earliest_separable_checkpoint``: the first checkpoint in training order that is separable (null if none).
* **Best cell**: the (checkpoint, layer) with the highest validation accuracy over the whole grid (ties: the
  earliest checkpoint, then the lowest layer); ``best_accuracy`` is its test accuracy with its interval.
* **Negative control**: probes trained on permuted labels (``permuted_label_accuracy`` per cell). The fraction
  of cells whose permuted-label interval lies above the majority baseline estimates the false-positive rate of
  "separable" (expected at most ~2.5 % for a 95 % interval); the control fails above ``NEGATIVE_CONTROL_MAX``.
* **Positive control** (the built-in ``word_order`` dimension, a signal that only pre-training can create): it
  passes when the first checkpoint is not separable and the last one is.
* ``fitting_layers`` / ``compression_layers``: the layers whose phases row (``trusttrace.phases``) has
  ``fitting`` / ``compression`` true.
* Steering columns: ``trusttrace.steering_selection.select_steering`` (chosen on validation, reported on test).

Pure pandas/pyarrow; no snakemake object, no torch.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa

from trusttrace.aggregate import table_schema
from trusttrace.probe import wilson_interval

POSITIVE_CONTROL = "word_order"
# A negative control whose "separable" rate exceeds this is reported as failed (a 95 % interval should give
# ~2.5 %; 10 % leaves room for the correlation between neighbouring layers' probes on few cells).
NEGATIVE_CONTROL_MAX = 0.10

STEERING_COLUMNS = (
    ("steering_best_checkpoint", pa.string()),
    ("steering_best_layer", pa.int64()),
    ("steering_best_alpha", pa.float64()),
    ("steering_effect", pa.float64()),
    ("steering_effect_ci_low", pa.float64()),
    ("steering_effect_ci_high", pa.float64()),
    ("steering_random_control", pa.float64()),
    ("steering_fluency_cost", pa.float64()),
)

FINDINGS_SCHEMA = table_schema(
    *[
        "model",
        "dimension",
        ("n_checkpoints", pa.int64()),
        ("selection", pa.string()),
        ("majority_baseline", pa.float64()),
        ("earliest_separable_checkpoint", pa.string()),
        ("earliest_separable_step", pa.int64()),
        ("earliest_separable_layer", pa.int64()),
        ("earliest_separable_accuracy", pa.float64()),
        ("earliest_separable_accuracy_ci_low", pa.float64()),
        ("earliest_separable_accuracy_ci_high", pa.float64()),
        ("best_checkpoint", pa.string()),
        ("best_step", pa.int64()),
        ("best_layer", pa.int64()),
        ("best_validation_accuracy", pa.float64()),
        ("best_accuracy", pa.float64()),
        ("best_accuracy_ci_low", pa.float64()),
        ("best_accuracy_ci_high", pa.float64()),
        ("first_checkpoint_accuracy", pa.float64()),
        ("last_checkpoint_accuracy", pa.float64()),
        ("permuted_label_accuracy_mean", pa.float64()),
        ("permuted_label_separable_fraction", pa.float64()),
        ("negative_control_passed", pa.bool_()),
        ("positive_control_passed", pa.bool_()),
        ("fitting_layers", pa.list_(pa.int64())),
        ("compression_layers", pa.list_(pa.int64())),
        *STEERING_COLUMNS,
    ]
)

_PROBE_COLUMNS = ("accuracy", "validation_accuracy", "majority_baseline", "permuted_label_accuracy", "n_test")


def probe_cells(metrics: pd.DataFrame, model: str, dimension: str) -> pd.DataFrame:
    """One row per (checkpoint, layer) probe cell of a model x dimension, wide: accuracy, its interval,
    validation_accuracy, majority_baseline, permuted_label_accuracy, n_test; in training then layer order."""
    here = metrics[
        (metrics["model"] == model)
        & (metrics["dimension"] == dimension)
        & (metrics["source"] == "probe")
        & metrics["metric"].isin(_PROBE_COLUMNS)
    ]
    if here.empty:
        return pd.DataFrame(columns=["checkpoint", "checkpoint_index", "step", "layer", *_PROBE_COLUMNS])
    # Pivot on keys that are never null (a hub checkpoint may have no step), then attach the others.
    keys = ["checkpoint_index", "layer"]
    wide = here.pivot_table(index=keys, columns="metric", values="value", aggfunc="first")
    accuracy = here[here["metric"] == "accuracy"].set_index(keys)
    wide = wide.join(accuracy[["checkpoint", "step", "ci_low", "ci_high"]]).reset_index()
    for column in _PROBE_COLUMNS:
        if column not in wide:
            wide[column] = math.nan
    return wide.sort_values(["checkpoint_index", "layer"], kind="stable").reset_index(drop=True)


def _bonferroni_interval(row: pd.Series, n_layers: int, ci_level: float) -> tuple[float, float]:
    level = 1.0 - (1.0 - ci_level) / max(n_layers, 1)
    n_test = int(row["n_test"])
    return wilson_interval(round(row["accuracy"] * n_test), n_test, level)


def selected_layers(
    metrics: pd.DataFrame, model: str, dimension: str, ci_level: float = 0.95, *, cells: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per checkpoint (training order): the layer chosen on validation accuracy, its test accuracy and
    interval, the majority baseline, ``separable`` and ``selection`` (``validation`` or ``bonferroni``)."""
    cells = probe_cells(metrics, model, dimension) if cells is None else cells
    rows = []
    for _, group in cells.groupby("checkpoint_index", sort=True):
        if group["validation_accuracy"].notna().all():
            chosen = group.loc[group["validation_accuracy"].idxmax()].copy()
            chosen["selection"] = "validation"
        else:
            chosen = group.loc[group["accuracy"].idxmax()].copy()
            chosen["ci_low"], chosen["ci_high"] = _bonferroni_interval(chosen, len(group), ci_level)
            chosen["selection"] = "bonferroni"
        chosen["separable"] = bool(chosen["ci_low"] > chosen["majority_baseline"])
        rows.append(chosen)
    columns = [*cells.columns, "selection", "separable"]
    return pd.DataFrame(rows, columns=columns).reset_index(drop=True)


def best_cell(
    metrics: pd.DataFrame, model: str, dimension: str, ci_level: float = 0.95, *, cells: pd.DataFrame | None = None
) -> dict | None:
    """The grid's best (checkpoint, layer) chosen on validation accuracy (test accuracy without validation rows,
    then with a Bonferroni interval over every cell searched); None without probe cells."""
    cells = probe_cells(metrics, model, dimension) if cells is None else cells
    if cells.empty:
        return None
    if cells["validation_accuracy"].notna().all():
        row = cells.loc[cells["validation_accuracy"].idxmax()].to_dict()
        row["selection"] = "validation"
    else:
        row = cells.loc[cells["accuracy"].idxmax()].to_dict()
        row["ci_low"], row["ci_high"] = _bonferroni_interval(pd.Series(row), len(cells), ci_level)
        row["selection"] = "bonferroni"
    return row


def _optional(value, kind=float):
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    return kind(value)


def _cell_columns(prefix: str, cell) -> dict:
    """``<prefix>_checkpoint``, ``_step``, ``_layer``, ``_accuracy`` and its ``_accuracy_ci_low/high`` of a cell."""
    return {
        f"{prefix}_checkpoint": str(cell["checkpoint"]),
        f"{prefix}_step": _optional(cell["step"], int),
        f"{prefix}_layer": int(cell["layer"]),
        f"{prefix}_accuracy": float(cell["accuracy"]),
        f"{prefix}_accuracy_ci_low": float(cell["ci_low"]),
        f"{prefix}_accuracy_ci_high": float(cell["ci_high"]),
    }


def _layers_where(phases: pd.DataFrame, model: str, dimension: str, column: str) -> list[int]:
    if phases is None or phases.empty or column not in phases:
        return []
    rows = phases[(phases["model"] == model) & (phases["dimension"] == dimension)]
    if "input_reference" in rows and rows["input_reference"].notna().any():
        rows = rows[rows["input_reference"] == rows["input_reference"].dropna().iloc[0]]
    return sorted(int(layer) for layer in rows.loc[rows[column].fillna(False).astype(bool), "layer"].unique())


def negative_control(
    metrics: pd.DataFrame, model: str, dimension: str, ci_level: float = 0.95, *, cells: pd.DataFrame | None = None
) -> dict:
    """Mean permuted-label accuracy and the fraction of cells whose Wilson interval lies above the baseline."""
    cells = probe_cells(metrics, model, dimension) if cells is None else cells
    cells = cells.dropna(subset=["permuted_label_accuracy", "n_test"])
    if cells.empty:
        return {"permuted_label_accuracy_mean": None, "permuted_label_separable_fraction": None}
    columns = (cells["permuted_label_accuracy"], cells["n_test"], cells["majority_baseline"])
    above = [
        wilson_interval(round(acc * n), int(n), ci_level)[0] > baseline
        for acc, n, baseline in zip(*columns, strict=True)
    ]
    return {
        "permuted_label_accuracy_mean": float(cells["permuted_label_accuracy"].mean()),
        "permuted_label_separable_fraction": float(np.mean(above)),
    }


def dimension_findings(
    metrics: pd.DataFrame,
    phases: pd.DataFrame,
    model: str,
    dimension: str,
    ci_level: float = 0.95,
) -> dict:
    """The findings row of one model x dimension (see the module docstring for every column)."""
    from trusttrace.steering_selection import select_steering

    cells = probe_cells(metrics, model, dimension)  # pivoted once, shared by every finding below
    curve = selected_layers(metrics, model, dimension, ci_level, cells=cells)
    row: dict = {"model": model, "dimension": dimension, "n_checkpoints": len(curve)}
    if len(curve):
        row["selection"] = "validation" if (curve["selection"] == "validation").all() else "bonferroni"
        row["majority_baseline"] = float(curve["majority_baseline"].iloc[-1])
        row["first_checkpoint_accuracy"] = float(curve["accuracy"].iloc[0])
        row["last_checkpoint_accuracy"] = float(curve["accuracy"].iloc[-1])
        separable = curve[curve["separable"]]
        if len(separable):
            row.update(_cell_columns("earliest_separable", separable.iloc[0]))
        if dimension == POSITIVE_CONTROL and len(curve) >= 2:
            row["positive_control_passed"] = bool(not curve["separable"].iloc[0] and curve["separable"].iloc[-1])
    best = best_cell(metrics, model, dimension, ci_level, cells=cells)
    if best is not None:
        row.update(_cell_columns("best", best), best_validation_accuracy=_optional(best["validation_accuracy"]))
    control = negative_control(metrics, model, dimension, ci_level, cells=cells)
    row.update(control)
    if control["permuted_label_separable_fraction"] is not None:
        row["negative_control_passed"] = control["permuted_label_separable_fraction"] <= NEGATIVE_CONTROL_MAX
    row["fitting_layers"] = _layers_where(phases, model, dimension, "fitting")
    row["compression_layers"] = _layers_where(phases, model, dimension, "compression")
    steering = select_steering(metrics, model, dimension)
    if steering:
        row.update({name: steering.get(name) for name, _ in STEERING_COLUMNS})
    return row


def findings_table(metrics: pd.DataFrame, phases: pd.DataFrame, ci_level: float = 0.95) -> pd.DataFrame:
    """``dimension_findings`` for every model x dimension of the metrics table, in order of appearance."""
    pairs = list(dict.fromkeys(zip(metrics["model"], metrics["dimension"], strict=False)))
    rows = [dimension_findings(metrics, phases, model, dimension, ci_level) for model, dimension in pairs]
    columns = [field.name for field in FINDINGS_SCHEMA]
    return pd.DataFrame(rows, columns=columns)
