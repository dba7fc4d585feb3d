"""Tests for trusttrace.probe: known answers on synthetic Gaussians, determinism, standardisation, validation."""

import json
import subprocess
import sys

import numpy as np
import pytest

from trusttrace.errors import TrustTraceError
from trusttrace.probe import (
    ProbeSettings,
    bootstrap_accuracy_ci,
    mass_mean_accuracy,
    probe_metrics,
    standardize,
    v_information_bits,
    validate_probe_inputs,
)

KEYS = {
    "accuracy",
    "accuracy_ci_low",
    "accuracy_ci_high",
    "control_accuracy",
    "selectivity",
    "mass_mean_accuracy",
    "v_information_bits",
    "h_y_bits",
    "probe_cross_entropy_bits",
    "n_train",
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
    assert abs(m["control_accuracy"] - 0.5) < 0.15
    assert m["selectivity"] > 0.3
    assert m["selectivity"] == pytest.approx(m["accuracy"] - m["control_accuracy"])
    assert (m["n_train"], m["n_test"], m["n_features"], m["n_constant_features"]) == (400, 400, 20, 0)


def test_result_is_plain_json_types(separated):
    _, m = separated
    for key, value in m.items():
        assert type(value) in (float, int), (key, type(value))
    assert json.loads(json.dumps(m)) == m


def test_shuffled_labels_at_chance():
    X_train, y_train, X_test, y_test = gaussians(n_train=400, n_test=400, d=20, shift=0.0, seed=3)
    m = probe_metrics(X_train, y_train, X_test, y_test)
    assert abs(m["accuracy"] - 0.5) < 0.15
    assert abs(m["mass_mean_accuracy"] - 0.5) < 0.15
    assert m["v_information_bits"] <= 0.05
    assert abs(m["selectivity"]) < 0.2


def test_deterministic_for_seed_and_seed_matters(separated):
    data, m = separated
    assert probe_metrics(*data, ProbeSettings(seed=0)) == m
    other = probe_metrics(*data, ProbeSettings(seed=1))
    assert other["accuracy"] == m["accuracy"]  # lbfgs fit does not depend on the seed
    assert (other["accuracy_ci_low"], other["accuracy_ci_high"], other["control_accuracy"]) != (
        m["accuracy_ci_low"],
        m["accuracy_ci_high"],
        m["control_accuracy"],
    )


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
    m = probe_metrics(X_train, y_train, X_test, y_test, ProbeSettings(n_bootstrap=200))
    assert m["n_constant_features"] == 3
    assert m["n_features"] == 10
    assert np.isfinite(list(m.values())).all()


def test_all_constant_features_raise():
    X_train = np.ones((20, 6), dtype=np.float32)
    y_train = np.arange(20) % 2
    with pytest.raises(TrustTraceError, match=r"all 6 features are constant \("):
        standardize(X_train, X_train[:5])
    with pytest.raises(TrustTraceError, match=r"all 6 features are constant"):
        probe_metrics(X_train, y_train, X_train[:6], y_train[:6])


# ---- bootstrap -----------------------------------------------------------------------------------------------


def test_bootstrap_ci_shrinks_with_n_and_is_seeded():
    def ci(n):
        correct = np.arange(n) % 5 != 0  # accuracy 0.8
        return bootstrap_accuracy_ci(correct, 1000, 0.95, seed=0)

    small, large = ci(100), ci(10_000)
    assert small[0] < 0.8 < small[1] and large[0] < 0.8 < large[1]
    assert (large[1] - large[0]) < 0.2 * (small[1] - small[0])
    # normal approximation: half-width ~ 1.96 * sqrt(0.8 * 0.2 / n)
    assert (small[1] - small[0]) / 2 == pytest.approx(1.96 * np.sqrt(0.16 / 100), rel=0.15)
    assert ci(100) == small
    assert bootstrap_accuracy_ci(np.arange(100) % 5 != 0, 1000, 0.95, seed=1) != small
    assert all(type(v) is float for v in small)


def test_bootstrap_ci_degenerate_and_level():
    assert bootstrap_accuracy_ci(np.ones(50, bool), 100, 0.95, 0) == (1.0, 1.0)
    correct = np.arange(400) % 4 != 0
    lo90, hi90 = bootstrap_accuracy_ci(correct, 2000, 0.90, 0)
    lo99, hi99 = bootstrap_accuracy_ci(correct, 2000, 0.99, 0)
    assert hi99 - lo99 > hi90 - lo90


@pytest.mark.parametrize(
    "args, match",
    [
        ((np.zeros((3, 2), bool), 10, 0.95, 0), "1-D"),
        ((np.zeros(0, bool), 10, 0.95, 0), "non-empty"),
        ((np.ones(5, bool), 0, 0.95, 0), "n_bootstrap"),
        ((np.ones(5, bool), 10, 1.0, 0), "level"),
        ((np.array([0, 2, 1]), 10, 0.95, 0), "boolean"),
    ],
)
def test_bootstrap_bad_input(args, match):
    with pytest.raises(TrustTraceError, match=match):
        bootstrap_accuracy_ci(*args)


# ---- mass-mean and V-information -----------------------------------------------------------------------------


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
    m = probe_metrics(*data, ProbeSettings(min_rows_per_class=4, n_bootstrap=100))
    assert m["n_train"] == 20


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"C": 0.0}, "C="),
        ({"max_iter": 0}, "max_iter"),
        ({"n_bootstrap": 0}, "n_bootstrap"),
        ({"ci_level": 1.5}, "ci_level"),
        ({"min_rows_per_class": 0}, "min_rows_per_class"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_settings(kwargs, match):
    with pytest.raises(TrustTraceError, match=match):
        ProbeSettings(**kwargs)
