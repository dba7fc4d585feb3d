"""Tests for trusttrace.findings and the summary rendered from it: known answers on synthetic tidy tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from trusttrace.aggregate import metrics_table
from trusttrace.findings import (
    FINDINGS_SCHEMA,
    POSITIVE_CONTROL,
    best_cell,
    negative_control,
    selected_layers,
)
from trusttrace.probe import ProbeSettings, probe_metrics, wilson_interval

MODEL, DIMENSION = "m", "d"


def probe_rows(
    checkpoint_index,
    layer,
    *,
    accuracy,
    validation,
    n_test=100,
    baseline=0.5,
    permuted=0.5,
    dimension=DIMENSION,
    step=None,
):
    """Tidy rows of one probe cell, its interval the cell's own Wilson interval."""
    low, high = wilson_interval(round(accuracy * n_test), n_test)
    base = {
        "model": MODEL,
        "checkpoint": f"c{checkpoint_index}",
        "checkpoint_index": checkpoint_index,
        "step": step if step is not None else 10 * checkpoint_index,
        "tokens": None,
        "dimension": dimension,
        "layer": layer,
        "source": "probe",
        "alpha": np.nan,
    }
    values = {
        "accuracy": (accuracy, low, high),
        "validation_accuracy": (validation, None, None),
        "majority_baseline": (baseline, None, None),
        "permuted_label_accuracy": (permuted, None, None),
        "n_test": (n_test, None, None),
    }
    return [{**base, "metric": k, "value": v, "ci_low": lo, "ci_high": hi} for k, (v, lo, hi) in values.items()]


def table(rows):
    return pd.DataFrame([r for cell in rows for r in cell])


def test_layer_is_chosen_on_validation_not_test():
    metrics = table(
        [
            probe_rows(0, 1, accuracy=0.90, validation=0.60),  # best on test, poor on validation
            probe_rows(0, 2, accuracy=0.75, validation=0.80),
        ]
    )
    curve = selected_layers(metrics, MODEL, DIMENSION)
    assert curve["layer"].tolist() == [2] and curve["accuracy"].tolist() == [0.75]
    assert curve["selection"].tolist() == ["validation"]
    assert best_cell(metrics, MODEL, DIMENSION)["layer"] == 2


def test_separable_is_judged_against_the_majority_baseline():
    # 0.72 on 100 rows: interval [0.625, 0.80] clears 0.5 but not a 0.7 majority baseline.
    balanced = table([probe_rows(0, 1, accuracy=0.72, validation=0.7, baseline=0.5)])
    imbalanced = table([probe_rows(0, 1, accuracy=0.72, validation=0.7, baseline=0.7)])
    assert selected_layers(balanced, MODEL, DIMENSION)["separable"].tolist() == [True]
    assert selected_layers(imbalanced, MODEL, DIMENSION)["separable"].tolist() == [False]


def test_earliest_separable_is_the_first_checkpoint_in_training_order():
    metrics = table(
        [
            probe_rows(2, 1, accuracy=0.95, validation=0.9),
            probe_rows(0, 1, accuracy=0.52, validation=0.5),
            probe_rows(1, 1, accuracy=0.80, validation=0.8),
        ]
    )
    curve = selected_layers(metrics, MODEL, DIMENSION)
    assert curve["checkpoint"].tolist() == ["c0", "c1", "c2"]
    assert curve["separable"].tolist() == [False, True, True]


def test_without_validation_rows_the_interval_is_bonferroni_widened():
    rows = [probe_rows(0, layer, accuracy=0.6 + 0.01 * layer, validation=np.nan) for layer in range(1, 11)]
    curve = selected_layers(table(rows), MODEL, DIMENSION)
    assert curve["selection"].tolist() == ["bonferroni"] and curve["layer"].tolist() == [10]
    nominal = wilson_interval(70, 100, 0.95)
    adjusted = wilson_interval(70, 100, 1 - 0.05 / 10)
    assert (curve["ci_low"].iloc[0], curve["ci_high"].iloc[0]) == pytest.approx(adjusted)
    assert adjusted[0] < nominal[0]


def _noise_grid(rng, n_checkpoints=8, n_layers=30, n_val=80, n_test=80):
    """Probe cells with no signal at all: every layer's validation and test accuracy is Binomial(n, 0.5)/n."""
    rows = []
    for c in range(n_checkpoints):
        for layer in range(1, n_layers + 1):
            rows.append(
                probe_rows(
                    c,
                    layer,
                    accuracy=rng.binomial(n_test, 0.5) / n_test,
                    validation=rng.binomial(n_val, 0.5) / n_val,
                    n_test=n_test,
                )
            )
    return table(rows)


def test_layer_search_does_not_inflate_false_positives():
    """Pure noise over 30 layers x 8 checkpoints: with the layer chosen on validation, a checkpoint is called
    separable at about the nominal one-sided 2.5 %; taking the best test layer (the old rule) calls ~60 %."""
    rng = np.random.default_rng(0)
    honest, naive = [], []
    for _ in range(40):
        metrics = _noise_grid(rng)
        honest += selected_layers(metrics, MODEL, DIMENSION)["separable"].tolist()
        accuracy = metrics[metrics["metric"] == "accuracy"]
        best = accuracy.loc[accuracy.groupby("checkpoint_index")["value"].idxmax()]
        naive += (best["ci_low"] > 0.5).tolist()
    assert np.mean(honest) <= 0.05
    assert np.mean(naive) >= 0.3


def test_negative_control_passes_at_chance_and_fails_on_a_leak():
    at_chance = table([probe_rows(c, 1, accuracy=0.9, validation=0.9, permuted=0.5) for c in range(4)])
    leak = table([probe_rows(c, 1, accuracy=0.9, validation=0.9, permuted=0.85) for c in range(4)])
    assert negative_control(at_chance, MODEL, DIMENSION) == {
        "permuted_label_accuracy_mean": 0.5,
        "permuted_label_separable_fraction": 0.0,
    }
    assert negative_control(leak, MODEL, DIMENSION)["permuted_label_separable_fraction"] == 1.0


def probe_records(shifts, seed=0, n=240):
    """Cell records from real probes on Gaussian data: checkpoint i separates the classes by ``shifts[i]``."""
    rng = np.random.default_rng(seed)
    records = []
    for index, shift in enumerate(shifts):
        direction = rng.normal(size=16)
        direction /= np.linalg.norm(direction)

        def draw(m, shift=shift, direction=direction):
            y = np.arange(m) % 2
            return rng.normal(size=(m, 16)) + shift * y[:, None] * direction, y

        (X_train, y_train), (X_val, y_val), (X_test, y_test) = draw(n), draw(n // 3), draw(n // 3)
        for layer in (1, 2):
            scale = 1.0 if layer == 2 else 0.0  # layer 1 never carries the signal
            metrics = probe_metrics(
                X_train * [scale] + rng.normal(size=X_train.shape) * (1 - scale),
                y_train,
                X_test * [scale] + rng.normal(size=X_test.shape) * (1 - scale),
                y_test,
                ProbeSettings(),
                X_val * [scale] + rng.normal(size=X_val.shape) * (1 - scale),
                y_val,
            )
            records.append(
                {
                    "model": MODEL,
                    "checkpoint": f"step{index}",
                    "step": index,
                    "tokens": None,
                    "dimension": POSITIVE_CONTROL,
                    "layer": layer,
                    "source": "probe",
                    **metrics,
                }
            )
    return records


def test_real_probes_find_the_checkpoint_where_the_signal_appears():
    metrics = metrics_table(probe_records([0.0, 0.0, 3.0, 3.0]))
    curve = selected_layers(metrics, MODEL, POSITIVE_CONTROL)
    assert curve["separable"].tolist() == [False, False, True, True]
    assert curve["layer"].tolist()[2:] == [2, 2]
    assert curve["accuracy"].iloc[3] > 0.9 and abs(curve["accuracy"].iloc[0] - 0.5) < 0.15


def test_findings_table_and_summary(monkeypatch):
    from trusttrace import findings, summary

    metrics = metrics_table(probe_records([0.0, 0.0, 3.0, 3.0]))
    phases = pd.DataFrame(
        {
            "model": [MODEL] * 2,
            "dimension": [POSITIVE_CONTROL] * 2,
            "layer": [1, 2],
            "n_checkpoints": [4, 4],
            "fitting": [False, True],
            "compression": [False, False],
        }
    )
    frame = findings.findings_table(metrics, phases)
    assert list(frame.columns) == [field.name for field in FINDINGS_SCHEMA]
    row = frame.iloc[0]
    assert (row["earliest_separable_checkpoint"], row["earliest_separable_layer"]) == ("step2", 2)
    assert row["best_layer"] == 2 and row["best_accuracy_ci_low"] > row["majority_baseline"]
    assert bool(row["positive_control_passed"]) and bool(row["negative_control_passed"])
    assert list(row["fitting_layers"]) == [2] and list(row["compression_layers"]) == []
    degenerate = pd.DataFrame(columns=["model", "checkpoint", "step", "dimension", "layer", "source", "reason"])
    text = summary.summary_markdown(frame, metrics, phases, degenerate)
    assert "earliest separable checkpoint: step 2, layer 2" in text
    assert "positive control (learned during pre-training): passed (first checkpoint" in text
    assert "negative control (probes on permuted labels): passed (mean accuracy" in text
    assert "fitting (I(X;T) rises significantly to its peak) in 1/2 layers: 2" in text


def test_checkpoints_without_steps_keep_their_order():
    rows = [probe_rows(i, 1, accuracy=a, validation=a) for i, a in enumerate([0.5, 0.9])]
    metrics = table(rows).assign(step=None)
    curve = selected_layers(metrics, MODEL, DIMENSION)
    assert curve["checkpoint"].tolist() == ["c0", "c1"] and curve["separable"].tolist() == [False, True]


def test_findings_table_writes_parquet_and_csv(tmp_path):
    from trusttrace.aggregate import write_table
    from trusttrace.findings import findings_table

    metrics = metrics_table(probe_records([0.0, 3.0]))
    phases = pd.DataFrame(
        {
            "model": [MODEL] * 2,
            "dimension": [POSITIVE_CONTROL] * 2,
            "layer": [1, 2],
            "fitting": [True, True],
            "compression": [False, True],
        }
    )
    write_table(findings_table(metrics, phases), FINDINGS_SCHEMA, tmp_path / "f.parquet", tmp_path / "f.csv")
    assert pd.read_parquet(tmp_path / "f.parquet")["fitting_layers"].tolist()[0].tolist() == [1, 2]
    assert pd.read_csv(tmp_path / "f.csv")["fitting_layers"].tolist() == ["1;2"]


def test_summary_reads_findings_back_from_parquet(tmp_path):
    """Parquet returns list columns as arrays (empty ones included): the summary renders them."""
    from trusttrace import findings, summary
    from trusttrace.aggregate import write_table

    metrics = metrics_table(probe_records([0.0, 3.0]))
    phases = pd.DataFrame(
        {
            "model": [MODEL] * 2,
            "dimension": [POSITIVE_CONTROL] * 2,
            "layer": [1, 2],
            "n_checkpoints": [2, 2],
            "fitting": [False, False],
            "compression": [False, False],
        }
    )
    write_table(findings.findings_table(metrics, phases), FINDINGS_SCHEMA, tmp_path / "f.parquet")
    degenerate = pd.DataFrame(columns=["model", "checkpoint", "step", "dimension", "layer", "source", "reason"])
    text = summary.summary_markdown(pd.read_parquet(tmp_path / "f.parquet"), metrics, phases, degenerate)
    assert "fitting (I(X;T) rises significantly to its peak) in 0/2 layers" in text
