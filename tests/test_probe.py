"""Tests for trusttrace.probe: known answers on synthetic Gaussians, determinism, standardisation, validation."""

import json
import subprocess
import sys

import numpy as np
import pytest
from trusttrace.errors import TrustTraceError
from trusttrace.probe import (
    ProbeSettings,
    majority_baseline,
    mass_mean_accuracy,
    null_labels,
    probe_metrics,
    standardize,
    v_information_bits,
    validate_probe_inputs,
    wilson_interval,
)

KEYS = {
    "accuracy",
    "accuracy_ci_low",
    "accuracy_ci_high",
    "ci_method",
    "ci_level",
    "majority_baseline",
    "validation_accuracy",
    "permuted_label_accuracy",
    "accuracy_above_permuted",
    "mass_mean_accuracy",
    "v_information_bits",
    "h_y_bits",
    "probe_cross_entropy_bits",
    "n_train",
    "n_validation",
    "n_test",
    "n_features",
    "n_constant_features",
}


def gaussians(n_train=400, n_test=400, d=20, shift=5.0, seed=0):
    """Two balanced classes; class 1 shifted by ``shift`` sigma along a random unit direction."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=d)
    direction /= np.linalg.norm(direction)

    def split(n):
        y = np.arange(n) % 2
        rng.shuffle(y)
        X = rng.normal(size=(n, d)) + shift * y[:, None] * direction[None, :]
        return X.astype(np.float32), y

    X_train, y_train = split(n_train)
    X_test, y_test = split(n_test)
    return X_train, y_train, X_test, y_test


@pytest.fixture(scope="module")
def separated():
    data = gaussians()
    return data, probe_metrics(*data, ProbeSettings(seed=0))


def test_separated_gaussians_known_answers(separated):
    _, m = separated
    assert set(m) == KEYS
    assert m["accuracy"] >= 0.98
    assert m["mass_mean_accuracy"] >= 0.98
    assert m["accuracy_ci_low"] <= m["accuracy"] <= m["accuracy_ci_high"]
    assert 0.0 <= m["accuracy_ci_low"] <= m["accuracy_ci_high"] <= 1.0
    assert m["h_y_bits"] == pytest.approx(1.0, abs=0.01)  # balanced labels
    assert m["v_information_bits"] > 0.8
    assert m["v_information_bits"] <= m["h_y_bits"] + 1e-12
    assert m["v_information_bits"] == pytest.approx(m["h_y_bits"] - m["probe_cross_entropy_bits"])
    assert abs(m["permuted_label_accuracy"] - 0.5) < 0.15
    assert m["accuracy_above_permuted"] > 0.3
    assert m["accuracy_above_permuted"] == pytest.approx(m["accuracy"] - m["permuted_label_accuracy"])
    assert (m["n_train"], m["n_test"], m["n_features"], m["n_constant_features"]) == (400, 400, 20, 0)


def test_result_is_plain_json_types(separated):
    _, m = separated
    for key, value in m.items():
        expected = {"ci_method": (str,), "validation_accuracy": (type(None),)}.get(key, (float, int))
        assert type(value) in expected, (key, type(value))
    assert json.loads(json.dumps(m)) == m


def test_shuffled_labels_at_chance():
    X_train, y_train, X_test, y_test = gaussians(n_train=400, n_test=400, d=20, shift=0.0, seed=3)
    m = probe_metrics(X_train, y_train, X_test, y_test)
    assert abs(m["accuracy"] - 0.5) < 0.15
    assert abs(m["mass_mean_accuracy"] - 0.5) < 0.15
    assert m["v_information_bits"] <= 0.05
    assert abs(m["accuracy_above_permuted"]) < 0.2


def test_deterministic_for_seed_and_seed_matters(separated):
    data, m = separated
    assert probe_metrics(*data, ProbeSettings(seed=0)) == m
    other = probe_metrics(*data, ProbeSettings(seed=1))
    assert other["accuracy"] == m["accuracy"]  # lbfgs fit does not depend on the seed
    assert (other["accuracy_ci_low"], other["accuracy_ci_high"]) == (m["accuracy_ci_low"], m["accuracy_ci_high"])
    assert other["permuted_label_accuracy"] != m["permuted_label_accuracy"]  # the permutation does


def test_does_not_import_torch():
    code = "import sys, trusttrace.probe; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- standardize ---------------------------------------------------------------------------------------------


def test_standardize_uses_train_statistics_only():
    rng = np.random.default_rng(0)
    X_train = rng.normal(3.0, 2.0, size=(200, 5)).astype(np.float32)
    X_test = rng.normal(3.0, 2.0, size=(50, 5)).astype(np.float32)
    a_train, a_test = standardize(X_train, X_test)
    b_train, b_test = standardize(X_train, X_test + 100.0)
    assert a_train.dtype == np.float64 and a_test.dtype == np.float64
    np.testing.assert_array_equal(a_train, b_train)
    np.testing.assert_allclose(a_train.mean(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(a_train.std(axis=0), 1.0, atol=1e-10)
    scale = X_train.astype(np.float64).std(axis=0)
    np.testing.assert_allclose(b_test - a_test, 100.0 / np.broadcast_to(scale, a_test.shape), rtol=1e-5)


def test_standardize_constant_columns_become_zero():
    rng = np.random.default_rng(1)
    X_train = rng.normal(size=(100, 4))
    X_train[:, 1] = 7.3
    X_train[:, 3] = 0.1  # a value whose float mean may round; still exactly constant
    X_test = rng.normal(size=(10, 4))
    X_test[:, 1] = 7.3
    Xs_train, Xs_test = standardize(X_train, X_test)
    assert np.isfinite(Xs_train).all() and np.isfinite(Xs_test).all()
    assert (Xs_train[:, [1, 3]] == 0.0).all()
    assert (Xs_test[:, 1] == 0.0).all()
    np.testing.assert_allclose(Xs_test[:, 3], X_test[:, 3] - 0.1)


def test_probe_metrics_counts_constant_columns():
    X_train, y_train, X_test, y_test = gaussians(n_train=200, n_test=100, d=10)
    X_train[:, :3] = 1.0
    X_test[:, :3] = 1.0
    m = probe_metrics(X_train, y_train, X_test, y_test, ProbeSettings())
    assert m["n_constant_features"] == 3
    assert m["n_features"] == 10
    assert np.isfinite([v for v in m.values() if isinstance(v, (int, float))]).all()


def test_all_constant_features_raise():
    X_train = np.ones((20, 6), dtype=np.float32)
    y_train = np.arange(20) % 2
    with pytest.raises(TrustTraceError, match=r"all 6 features are constant \("):
        standardize(X_train, X_train[:5])
    with pytest.raises(TrustTraceError, match=r"all 6 features are constant"):
        probe_metrics(X_train, y_train, X_train[:6], y_train[:6])


# ---- Wilson interval and majority baseline ------------------------------------------------------------------


def test_wilson_interval_textbook_values():
    # Hand-computed: p = 0.8, n = 100, z = 1.959964: centre 0.7896, half-width 0.0780.
    low, high = wilson_interval(80, 100, 0.95)
    assert low == pytest.approx(0.7112, abs=1e-4) and high == pytest.approx(0.8666, abs=1e-4)
    # At accuracy 1 the interval does not collapse: n / (n + z^2).
    low, high = wilson_interval(80, 80, 0.95)
    assert high == 1.0 and low == pytest.approx(80 / (80 + 1.959964**2), abs=1e-6)
    low, high = wilson_interval(0, 50, 0.95)
    assert low == 0.0 and 0.05 < high < 0.09


def test_wilson_interval_coverage_is_nominal():
    """Over many binomial draws the 95% interval covers the true rate ~95% of the time (n = 80, p = 0.9)."""
    rng = np.random.default_rng(0)
    draws = rng.binomial(80, 0.9, size=4000)
    covered = np.mean([lo <= 0.9 <= hi for lo, hi in (wilson_interval(int(k), 80) for k in draws)])
    assert 0.93 <= covered <= 0.975


def test_wilson_interval_level_and_bad_input():
    lo90, hi90 = wilson_interval(300, 400, 0.90)
    lo99, hi99 = wilson_interval(300, 400, 0.99)
    assert hi99 - lo99 > hi90 - lo90
    for args, match in [((5, 0), "n >= 1"), ((6, 5), "n_correct"), ((1, 5, 1.0), "level")]:
        with pytest.raises(TrustTraceError, match=match):
            wilson_interval(*args)


def test_majority_baseline_is_the_constant_predictor():
    y = np.array([1] * 558 + [0] * 442)  # ToxiGen-like imbalance
    assert majority_baseline(y) == pytest.approx(0.558)
    assert majority_baseline(1 - y) == pytest.approx(0.558)


def test_imbalanced_noise_is_not_separable_against_majority_baseline():
    """A signal-free probe on 70/30 labels can beat 0.5 by predicting the majority; against the majority
    baseline its CI low bound stays below (the bug of comparing to 0.5)."""
    rng = np.random.default_rng(3)
    y_train = (rng.random(600) < 0.7).astype(int)
    y_test = (rng.random(200) < 0.7).astype(int)
    m = probe_metrics(rng.normal(size=(600, 10)), y_train, rng.normal(size=(200, 10)), y_test)
    assert m["accuracy_ci_low"] > 0.5 or m["accuracy"] > 0.6  # looks "separable" against 0.5
    assert m["accuracy_ci_low"] < m["majority_baseline"]


def test_validation_accuracy_reported_when_given(separated):
    (X_train, y_train, X_test, y_test), _ = separated
    m = probe_metrics(X_train, y_train, X_test, y_test, ProbeSettings(), X_test[:100], y_test[:100])
    assert m["n_validation"] == 100 and m["validation_accuracy"] > 0.95
    assert m["accuracy"] == probe_metrics(X_train, y_train, X_test, y_test)["accuracy"]


def test_mass_mean_hand_example():
    Xs_train = np.array([[0.0, 0.0], [0.0, 1.0], [2.0, 0.0], [2.0, 1.0]])
    y_train = np.array([0, 0, 1, 1])
    # direction (2, 0); projected means 0 and 4, threshold 2 -> predict 1 iff x0 > 1
    Xs_test = np.array([[0.9, 5.0], [1.1, -5.0], [3.0, 0.0], [-1.0, 0.0]])
    assert mass_mean_accuracy(Xs_train, y_train, Xs_test, np.array([0, 1, 1, 0])) == 1.0
    assert mass_mean_accuracy(Xs_train, y_train, Xs_test, np.array([1, 1, 1, 1])) == 0.5


def test_mass_mean_zero_direction_predicts_majority():
    Xs_train = np.zeros((5, 3))
    y_train = np.array([1, 1, 1, 0, 0])
    assert mass_mean_accuracy(Xs_train, y_train, np.zeros((4, 3)), np.array([1, 1, 0, 1])) == 0.75


def test_v_information_hand_values():
    y_train = np.array([0, 1, 0, 1])
    y_test = np.array([0, 1, 1, 0])
    perfect = v_information_bits(y_train, y_test, y_test.astype(float))
    assert perfect["h_y_bits"] == pytest.approx(1.0)
    assert perfect["probe_cross_entropy_bits"] == pytest.approx(-np.log2(1 - 1e-12), abs=1e-9)
    assert perfect["v_information_bits"] == pytest.approx(1.0, abs=1e-9)
    prior_only = v_information_bits(y_train, y_test, np.full(4, 0.5))
    assert prior_only["v_information_bits"] == pytest.approx(0.0, abs=1e-12)
    # a confidently wrong probe is worse than the prior: negative held-out V-information, clipped not infinite
    wrong = v_information_bits(y_train, y_test, 1.0 - y_test.astype(float))
    assert -41.0 < wrong["v_information_bits"] < -38.0


def test_v_information_prior_from_train_evaluated_on_test():
    y_train = np.array([1, 0, 0, 0])  # prior P(y=1) = 0.25
    y_test = np.array([1, 1])
    out = v_information_bits(y_train, y_test, np.array([0.5, 0.5]))
    assert out["h_y_bits"] == pytest.approx(2.0)  # -log2(0.25)
    assert out["probe_cross_entropy_bits"] == pytest.approx(1.0)
    assert out["v_information_bits"] == pytest.approx(1.0)


def test_v_information_bad_p():
    with pytest.raises(TrustTraceError, match="shape"):
        v_information_bits(np.array([0, 1]), np.array([0, 1]), np.array([0.5]))
    with pytest.raises(TrustTraceError, match="probabilities"):
        v_information_bits(np.array([0, 1]), np.array([0, 1]), np.array([0.5, 1.5]))


# ---- validation ----------------------------------------------------------------------------------------------


def _valid(n_train=20, n_test=10, d=3):
    rng = np.random.default_rng(0)
    return (
        rng.normal(size=(n_train, d)).astype(np.float32),
        np.arange(n_train) % 2,
        rng.normal(size=(n_test, d)).astype(np.float32),
        np.arange(n_test) % 2,
    )


def test_validate_accepts_valid_input():
    validate_probe_inputs(*_valid(), min_rows_per_class=5)
    X_train, y_train, X_test, y_test = _valid()
    validate_probe_inputs(X_train, y_train.astype(bool), X_test, y_test.astype(float), min_rows_per_class=5)


def _case(name):
    X_train, y_train, X_test, y_test = _valid()
    if name == "x_train_1d":
        X_train = X_train[:, 0]
    elif name == "x_test_3d":
        X_test = X_test[None]
    elif name == "y_2d":
        y_train = y_train[:, None]
    elif name == "row_mismatch":
        y_train = y_train[:-1]
    elif name == "feature_mismatch":
        X_test = X_test[:, :2]
    elif name == "nan_train":
        X_train[[1, 4], 0] = np.nan
        X_train[4, 2] = np.inf
    elif name == "inf_test":
        X_test[3, 1] = -np.inf
    elif name == "bad_labels":
        y_train = y_train.copy()
        y_train[:3] = [2, -1, 2]
    elif name == "missing_train_class":
        y_train = np.ones_like(y_train)
    elif name == "missing_test_class":
        y_test = np.zeros_like(y_test)
    elif name == "too_few_rows":
        y_train = np.ones_like(y_train)
        y_train[:4] = 0
    return X_train, y_train, X_test, y_test


@pytest.mark.parametrize(
    "name, match",
    [
        ("x_train_1d", r"X_train must be 2-D .*got 1-D"),
        ("x_test_3d", r"X_test must be 2-D .*got 3-D"),
        ("y_2d", r"y_train must be 1-D"),
        ("row_mismatch", r"train split has 20 feature rows but 19 labels"),
        ("feature_mismatch", r"train has 3 features but test has 2"),
        ("nan_train", r"train features contain NaN/inf in 2 of 20 rows"),
        ("inf_test", r"test features contain NaN/inf in 1 of 10 rows"),
        ("bad_labels", r"train labels must be 0 or 1: 3 of 20 are not"),
        ("missing_train_class", r"class 0 is missing from the train split \(0 rows of class 0, 20 of class 1\)"),
        ("missing_test_class", r"class 1 is missing from the test split \(10 rows of class 0, 0 of class 1\)"),
        ("too_few_rows", r"train split has only 4 rows of class 0 \(need >= min_rows_per_class=5"),
    ],
)
def test_validation_errors(name, match):
    data = _case(name)
    with pytest.raises(TrustTraceError, match=match) as info:
        validate_probe_inputs(*data, min_rows_per_class=5)
    assert "\n" not in str(info.value)
    with pytest.raises(TrustTraceError, match=match):  # probe_metrics validates first
        probe_metrics(*data)


def test_min_rows_per_class_is_configurable():
    data = _case("too_few_rows")
    m = probe_metrics(*data, ProbeSettings(min_rows_per_class=4))
    assert m["n_train"] == 20


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"C": 0.0}, "C="),
        ({"max_iter": 0}, "max_iter"),
        ({"ci_level": 1.0}, "ci_level"),
        ({"ci_level": 1.5}, "ci_level"),
        ({"min_rows_per_class": 0}, "min_rows_per_class"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_settings(kwargs, match):
    with pytest.raises(TrustTraceError, match=match):
        ProbeSettings(**kwargs)


def test_null_labels_are_balanced_and_independent_of_the_truth():
    y = np.array([1] * 300 + [0] * 200)
    labels = null_labels(y, seed=0)
    assert labels.sum() == 300  # the class balance of y
    assert labels[y == 1].mean() == pytest.approx(0.6) and labels[y == 0].mean() == pytest.approx(0.6)
    assert not np.array_equal(labels, null_labels(y, seed=1))


def test_null_label_probe_stays_at_chance_on_far_apart_classes():
    """Classes 8 sigma apart: a probe on null labels cannot follow the true direction (one on a plain permutation
    can, through the permutation's chance correlation with the truth)."""
    accuracies = []
    for seed in range(8):
        X_train, y_train, X_test, y_test = gaussians(n_train=120, n_test=400, d=10, shift=8.0, seed=seed)
        accuracies.append(
            probe_metrics(X_train, y_train, X_test, y_test, ProbeSettings(seed=seed))["permuted_label_accuracy"]
        )
    # null labels: mean |accuracy - 0.5| ~0.04 (measured over 30 seeds); a plain permutation: ~0.12
    assert np.mean(np.abs(np.array(accuracies) - 0.5)) < 0.07
