"""Tests for trusttrace.phases: fitting and compression on curves whose answer is known, and the false-positive
rate of the noise model on simulated null curves."""

import math

import numpy as np
import pandas as pd
import pytest
from trusttrace.errors import TrustTraceError
from trusttrace.phases import (
    CI_Z,
    NULL_KINDS,
    PHASES_SCHEMA,
    Z_CHANGE,
    detect_phases,
    false_positive_rate,
    first_within_of_max,
    null_curves,
    phases_table,
    running_median3,
    step_noise,
)

LOG_STEPS = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256]  # unequal, log-spaced (like the default run)


def test_monotone_fall_is_neither_fitting_nor_compression():
    ixt = np.linspace(0.9, 0.3, 10)
    iyt = np.linspace(0.1, 0.5, 10)
    phase = detect_phases(LOG_STEPS, ixt, iyt)
    assert phase["peak_index"] == 0 and phase["ixt_rise"] == 0
    assert phase["fitting"] is False and phase["compression"] is False
    assert phase["ixt_drop"] == pytest.approx(0.6)  # it does fall, but no fitting came first


def test_rise_then_fall_with_iyt_holding_is_fitting_and_compression():
    ixt = [0.20, 0.31, 0.42, 0.55, 0.61, 0.52, 0.47, 0.44, 0.43]
    iyt = [0.05, 0.10, 0.15, 0.20, 0.24, 0.25, 0.25, 0.26, 0.255]
    steps = [0, 1, 4, 16, 64, 256, 1000, 4000, 10000]
    phase = detect_phases(steps, ixt, iyt)
    assert phase["fitting"] is True and phase["compression"] is True
    assert (phase["fitting_start_index"], phase["peak_index"], phase["compression_end_index"]) == (0, 4, 8)
    assert phase["ixt_rise"] == pytest.approx(0.41) and phase["ixt_drop"] == pytest.approx(0.18)
    assert phase["iyt_change_during_compression"] == pytest.approx(0.015)
    assert phase["iyt_change_during_fitting"] == pytest.approx(0.19)
    assert phase["ixt_rise"] > phase["fitting_threshold"] > 0 and phase["ixt_drop"] > phase["compression_threshold"]


def test_rise_then_fall_of_both_is_fitting_without_compression():
    ixt = [0.20, 0.31, 0.42, 0.55, 0.61, 0.52, 0.47, 0.44, 0.43]
    iyt = [0.05, 0.10, 0.15, 0.20, 0.24, 0.20, 0.16, 0.12, 0.10]  # I(Y;T) falls with I(X;T)
    phase = detect_phases(np.arange(9), ixt, iyt)
    assert phase["fitting"] is True and phase["compression"] is False
    assert phase["iyt_change_during_compression"] == pytest.approx(-0.14)
    assert -phase["iyt_change_during_compression"] > phase["iyt_fall_threshold"]


def test_noisy_rise_then_fall_is_found_on_log_spaced_steps():
    rng = np.random.default_rng(1)
    shape = np.r_[np.linspace(0.2, 0.6, 6), np.linspace(0.6, 0.4, 5)[1:]]  # peak at position 5 of 10
    ixt = shape + rng.normal(0, 0.01, 10)
    iyt = np.linspace(0.05, 0.3, 10) + rng.normal(0, 0.01, 10)
    # steps given out of order: positions refer to the inputs, the curve is read in step order
    order = rng.permutation(10)
    steps = np.asarray(LOG_STEPS, dtype=float)
    phase = detect_phases(steps[order], ixt[order], iyt[order])
    assert phase["fitting"] and phase["compression"]
    assert steps[order][phase["peak_index"]] in (16.0, 32.0)  # the level around the true peak (16)
    assert steps[order][phase["compression_end_index"]] in (128.0, 256.0)


def test_late_single_spike_is_not_compression():
    rng = np.random.default_rng(4)
    ixt = 0.5 + rng.normal(0, 0.01, 10)
    ixt[8] += 0.3  # one checkpoint jumps up and straight back down
    iyt = 0.2 + rng.normal(0, 0.01, 10)
    phase = detect_phases(LOG_STEPS, ixt, iyt)
    assert phase["fitting"] is False and phase["compression"] is False
    # the same jump held for two checkpoints before falling back is a level, and is called
    ixt[7] += 0.3
    held = detect_phases(LOG_STEPS, ixt, iyt)
    assert held["fitting"] is True and held["compression"] is True


def test_spike_is_removed_by_the_running_median():
    assert running_median3(np.array([1.0, 1.0, 5.0, 1.0, 1.0])).tolist() == [1.0, 1.0, 1.0, 1.0, 1.0]
    assert running_median3(np.array([1.0, 2.0, 3.0, 2.0, 1.0])).tolist() == [1.0, 2.0, 2.0, 2.0, 1.0]
    assert running_median3(np.array([3.0, 1.0])).tolist() == [3.0, 1.0]


def test_pure_noise_is_mostly_neither():
    rng = np.random.default_rng(0)
    calls = [detect_phases(LOG_STEPS, 0.5 + rng.normal(0, 0.02, 10), 0.2 + rng.normal(0, 0.02, 10)) for _ in range(300)]
    assert np.mean([c["fitting"] for c in calls]) < 0.05
    assert np.mean([c["compression"] for c in calls]) < 0.02


@pytest.mark.parametrize("kind", NULL_KINDS)
def test_false_positive_rate_of_compression_is_at_most_5_percent(kind):
    # 8-12 log-spaced checkpoints, with and without a sampling SE, at the default threshold Z_CHANGE
    for n_checkpoints in (8, 10, 12):
        for sampling_se in (0.0, 0.5):
            rate = false_positive_rate(kind, n_checkpoints, n_curves=1500, seed=11, sampling_se=sampling_se)
            assert rate["compression"] <= 0.05, (kind, n_checkpoints, sampling_se, rate)


def test_previous_rule_would_fail_the_same_calibration():
    # the old rule (argmax, then any drop to the last value > 3 x second-difference noise) on a random walk
    rng = np.random.default_rng(2)
    curves = null_curves("random_walk", 1000, 10, rng)
    old = []
    for curve in curves:
        peak = int(np.argmax(curve))
        noise = 1.4826 * np.median(np.abs(np.diff(curve, 2))) / math.sqrt(3)
        old.append(peak < 9 and curve[peak] - curve[-1] > 3 * noise)
    assert np.mean(old) > 0.2  # what the new rule brings down to <= 5 %


def test_null_curves_have_the_stated_structure():
    rng = np.random.default_rng(0)
    ar = null_curves("ar1", 20000, 6, rng)
    assert ar[:, 3].std() == pytest.approx(1.0, abs=0.03)
    assert np.corrcoef(ar[:, 2], ar[:, 3])[0, 1] == pytest.approx(0.7, abs=0.02)
    walk = null_curves("random_walk", 20000, 6, rng)
    assert walk[:, 5].var() == pytest.approx(6.0, rel=0.05)
    with pytest.raises(TrustTraceError, match="unknown kind"):
        null_curves("pink", 1, 5, rng)


def test_step_noise_is_the_first_difference_sd_of_a_random_walk():
    rng = np.random.default_rng(3)
    walk = np.cumsum(rng.normal(0, 0.1, 4000)) + np.linspace(0, 5, 4000)  # a linear trend does not count
    assert step_noise(walk) == pytest.approx(0.1, rel=0.05)
    # white noise of SD s: tau^2 = 3 s^2 (conservative); sampling SEs equal to the noise cancel it completely
    white = rng.normal(0, 0.1, 4000)
    assert step_noise(white) == pytest.approx(0.1 * math.sqrt(3), rel=0.05)
    assert step_noise(white, np.full(4000, 0.1)) ** 2 < 0.1 * 3 * 0.1**2  # tau^2 from 0.03 to under a tenth
    assert math.isnan(step_noise([0.1, 0.5, 0.2]))


def test_sampling_se_makes_small_changes_insignificant():
    ixt = [0.20, 0.31, 0.42, 0.55, 0.61, 0.52, 0.47, 0.44, 0.43]
    iyt = [0.05, 0.10, 0.15, 0.20, 0.24, 0.25, 0.25, 0.26, 0.255]
    assert detect_phases(np.arange(9), ixt, iyt, np.full(9, 0.01), np.full(9, 0.01))["compression"] is True
    wide = detect_phases(np.arange(9), ixt, iyt, np.full(9, 0.1), np.full(9, 0.1))
    assert wide["fitting"] is True and wide["compression"] is False  # a 0.18 drop within 0.1-SE points


def test_too_few_checkpoints_or_no_iyt_never_compress():
    phase = detect_phases([0, 8, 16], [0.1, 0.9, 0.1], [0.1, 0.2, 0.3])
    assert phase["fitting"] is False and phase["compression"] is False and math.isnan(phase["noise_scale"])
    ixt = [0.20, 0.31, 0.42, 0.55, 0.61, 0.52, 0.47, 0.44, 0.43]
    phase = detect_phases(np.arange(9), ixt)
    assert phase["fitting"] is True and phase["compression"] is False and math.isnan(phase["iyt_fall_threshold"])


def test_bad_input_is_one_line_error():
    with pytest.raises(TrustTraceError, match="no finite values"):
        detect_phases([0, 1, 2, 3], [math.nan] * 4)
    with pytest.raises(TrustTraceError, match="iyt has shape"):
        detect_phases([0, 1, 2, 3], [1, 2, 3, 4], [1, 2])


def test_first_step_within_one_point_of_max():
    steps = [0, 1, 4, 16, 64, 256]
    index, best = first_within_of_max(steps, [0.5, 0.62, 0.795, 0.80, 0.81, 0.79])
    assert (index, best) == (3, 0.81)  # 0.795 is 0.015 below the max; 0.80 is within 0.01
    index, _ = first_within_of_max([64, 0, 16], [0.9, 0.5, 0.895])  # unsorted input: position in the input
    assert index == 2


def _metrics_rows(checkpoints, steps, ixt, iyt, ixt_se=None):
    rows = []
    for i, (checkpoint, step) in enumerate(zip(checkpoints, steps, strict=False)):
        se = 0.0 if ixt_se is None else ixt_se
        keys = {
            "model": "m",
            "checkpoint": checkpoint,
            "checkpoint_index": i,
            "step": step,
            "dimension": "d",
            "layer": 1,
        }
        low, high = max(0.0, ixt[i] - CI_Z * se), ixt[i] + CI_Z * se
        rows.append({**keys, "metric": "hsic_ixt", "value": ixt[i], "ci_low": low, "ci_high": high})
        rows.append({**keys, "metric": "hsic_iyt", "value": iyt[i], "ci_low": None, "ci_high": None})
    return pd.DataFrame(rows)


def test_phases_table_without_steps_uses_checkpoint_index_and_reads_ses():
    ixt = [0.20, 0.31, 0.42, 0.55, 0.61, 0.52, 0.47, 0.44, 0.43]
    iyt = [0.05, 0.10, 0.15, 0.20, 0.24, 0.25, 0.25, 0.26, 0.255]
    names = [f"rev{i}" for i in range(9)]
    table = phases_table(_metrics_rows(names, [None] * 9, ixt, iyt), input_reference="first_checkpoint")
    assert list(table.columns) == [f.name for f in PHASES_SCHEMA]
    row = table.iloc[0]
    assert bool(row["fitting"]) and bool(row["compression"])
    assert (row["fitting_start_checkpoint"], row["fitting_end_checkpoint"], row["compression_end_checkpoint"]) == (
        "rev0",
        "rev4",
        "rev8",
    )
    assert pd.isna(row["peak_step"]) and row["input_reference"] == "first_checkpoint"
    assert row["z"] == Z_CHANGE and str(Z_CHANGE) in row["noise_method"]
    # SEs come back from the CIs: with SE 0.1 per point the same drop is no longer significant
    wide = phases_table(_metrics_rows(names, [None] * 9, ixt, iyt, ixt_se=0.1)).iloc[0]
    assert bool(wide["fitting"]) and not bool(wide["compression"])
    assert wide["compression_threshold"] > Z_CHANGE * math.sqrt(2) * 0.1 * 0.999
    assert pd.isna(wide["compression_end_checkpoint"])
