"""Tests for trusttrace.mi: normalized HSIC (fast exact path vs the literal formula), linear CKA, subsampling."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from trusttrace import mi
from trusttrace.data import stratified_sample
from trusttrace.errors import TrustTraceError
from trusttrace.layout import layer_file

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
    threadpool_limits = None

RTOL = 1e-9


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """The matrices here are small (m <= 300), where one BLAS thread is fastest anyway. Multi-threaded OpenBLAS
    LAPACK on small matrices slows down 100-fold when the machine's cores are oversubscribed (seen: 0.4 s for a
    300 x 300 Cholesky), which would make this file's run time depend on what else the machine runs."""
    if threadpool_limits is None:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def _standardize(A: np.ndarray) -> np.ndarray:
    return (A - A.mean(axis=0)) / A.std(axis=0)


def _make(m: int, d_x: int, d_t: int, seed: int, p: float = 0.4):
    """X (m, d_x), 0/1 labels y, and T (m, d_t) depending on X and y plus noise."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, d_x))
    y = (rng.random(m) < p).astype(np.float64)
    T = np.tanh(X @ rng.standard_normal((d_x, d_t)) / np.sqrt(d_x))
    T += 0.5 * np.outer(y, rng.standard_normal(d_t)) + 0.3 * rng.standard_normal((m, d_t))
    return X, y, T


def _accurate_rs(A: np.ndarray, sigma: float, lambda_factor: float = mi.DEFAULT_LAMBDA_FACTOR) -> np.ndarray:
    """Independent high-accuracy Rs = S (S + lambda I)^{-1} via eigh of the expm1-centered kernel."""
    m, d = A.shape
    diff = A[:, None, :] - A[None, :, :]
    D = np.einsum("ijk,ijk->ij", diff, diff)
    E = np.expm1(-D / (2.0 * sigma**2 * d))
    r = E.mean(axis=1)
    S = E - r[:, None] - r[None, :] + r.mean()
    w, V = np.linalg.eigh(S)
    w = np.clip(w, 0.0, None)
    return (V * (w / (w + lambda_factor * m))) @ V.T


# ------------------------------------------------------------------------------------------------ kernel, direct


def test_gaussian_kernel_matches_definition():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((7, 3)) * 20
    K = mi.gaussian_kernel(A, sigma=2.0)
    expected = np.array([[np.exp(-np.sum((a - b) ** 2) / (2 * 2.0**2 * 3)) for b in A] for a in A])
    assert K.shape == (7, 7)
    np.testing.assert_allclose(K, expected, rtol=1e-12)
    assert np.all(np.diag(K) == 1.0)


def test_direct_operator_is_literal_formula():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((12, 4))
    m = 12
    K = mi.gaussian_kernel(A, sigma=0.7)
    H = np.eye(m) - np.ones((m, m)) / m
    Kc = K @ H
    lam = 1e-3 * m
    expected = Kc @ np.linalg.inv(Kc + lam * np.eye(m))
    np.testing.assert_allclose(mi.hsic_operator_direct(A, 0.7, 1e-3), expected, rtol=1e-10, atol=1e-12)
    B = rng.standard_normal((12, 2))
    RB = mi.hsic_operator_direct(B, 0.7, 1e-3)
    assert mi.nhsic_direct(A, B, 0.7, 1e-3) == pytest.approx(np.trace(expected @ RB), rel=1e-12)


# ------------------------------------------------------------------------------------------------ fast == direct


@pytest.mark.parametrize(
    "m,d_x,d_t,seed",
    [(200, 5, 7, 0), (240, 16, 128, 1), (257, 128, 32, 2), (300, 64, 5, 3), (220, 128, 128, 4)],
)
def test_fast_matches_direct_random(m, d_x, d_t, seed):
    X, y, T = _make(m, d_x, d_t, seed)
    ixt, iyt = mi.NormalizedHSIC(X, y).estimate(T)
    assert _rel(ixt, mi.nhsic_direct(X, T)) <= RTOL
    assert _rel(iyt, mi.nhsic_direct(y[:, None], T)) <= RTOL
    assert ixt > 0 and iyt > 0


def test_fast_matches_direct_nearly_constant_kernel():
    """Standardized d=128 features: off-diagonal kernel ~ 1 - 4e-4, the regime of the paper's sigma=50."""
    X, y, T = _make(256, 128, 128, seed=5)
    X, T = _standardize(X), _standardize(T)
    K = mi.gaussian_kernel(T)
    off = K[~np.eye(256, dtype=bool)]
    assert 1 - 6e-4 < off.mean() < 1 - 2e-4 and off.min() > 0.998
    ixt, iyt = mi.NormalizedHSIC(X, y).estimate(T)
    assert _rel(ixt, mi.nhsic_direct(X, T)) <= RTOL
    assert _rel(iyt, mi.nhsic_direct(y[:, None], T)) <= RTOL
    # and against an independent eigen-decomposition reference (no K - mean(K) cancellation): closer still
    rs_t = _accurate_rs(T, 50.0)
    assert _rel(ixt, float(np.sum(_accurate_rs(X, 50.0) * rs_t))) <= 1e-12
    assert _rel(iyt, float(np.sum(_accurate_rs(y[:, None], 50.0) * rs_t))) <= 1e-12


def test_fast_matches_direct_other_sigma_lambda_and_reuse():
    X, y, T1 = _make(210, 10, 20, seed=6)
    _, _, T2 = _make(210, 10, 30, seed=7)
    est = mi.NormalizedHSIC(X, y, sigma=0.3, lambda_factor=1e-3)
    for T in (T1, T2, T1):  # reused across layers, order does not matter
        ixt, iyt = est.estimate(T)
        assert _rel(ixt, mi.nhsic_direct(X, T, 0.3, 1e-3)) <= RTOL
        assert _rel(iyt, mi.nhsic_direct(y[:, None], T, 0.3, 1e-3)) <= RTOL


def test_multiclass_general_y_and_lowrank_x_match_direct():
    rng = np.random.default_rng(8)
    m = 230
    X, _, T = _make(m, 12, 16, seed=8)
    y3 = rng.integers(0, 3, size=m).astype(float)  # 3 classes: low-rank label path
    y_cont = rng.standard_normal((m, 2))  # 230 distinct rows: dense fallback
    X_few = rng.standard_normal((5, 12))[rng.integers(0, 5, size=m)]  # 5 distinct rows: low-rank X path
    for XX, yy in ((X, y3), (X, y_cont), (X_few, y3)):
        ixt, iyt = mi.NormalizedHSIC(XX, yy).estimate(T)
        Y = yy if yy.ndim == 2 else yy[:, None]
        assert _rel(ixt, mi.nhsic_direct(XX, T)) <= RTOL
        assert _rel(iyt, mi.nhsic_direct(Y, T)) <= RTOL


@pytest.mark.parametrize("median", [False, True])
def test_threaded_kernel_passes_match_inline(monkeypatch, median):
    """The column-block threaded kernel passes (used from m = PARALLEL_MIN_ROWS) give the inline result."""
    X, y, T = _make(203, 9, 17, seed=19)
    inline = mi.NormalizedHSIC(X, y, median_heuristic=median).estimate(T)
    monkeypatch.setattr(mi, "PARALLEL_MIN_ROWS", 0)
    monkeypatch.setattr(mi, "_workers", lambda: 3)
    threaded = mi.NormalizedHSIC(X, y, median_heuristic=median).estimate(T)
    np.testing.assert_allclose(threaded, inline, rtol=RTOL)  # summation order differs; sharp kernels amplify it
    if not median:
        assert _rel(threaded[0], mi.nhsic_direct(X, T)) <= RTOL


def test_kernel_threads_respect_the_job_thread_budget(monkeypatch):
    monkeypatch.setattr(mi.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    assert mi._workers() == mi.MAX_THREADS
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert mi._workers() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    assert mi._workers() == 2


def test_median_heuristic_matches_direct_with_per_representation_sigma():
    X, y, T = _make(230, 20, 40, seed=9)
    ixt, iyt = mi.NormalizedHSIC(X, y, median_heuristic=True).estimate(T)
    R_t = mi.hsic_operator_direct(T, mi.median_heuristic_sigma(T))
    R_x = mi.hsic_operator_direct(X, mi.median_heuristic_sigma(X))
    R_y = mi.hsic_operator_direct(y[:, None], mi.median_heuristic_sigma(y[:, None]))
    assert _rel(ixt, float(np.einsum("ij,ji->", R_x, R_t))) <= RTOL
    assert _rel(iyt, float(np.einsum("ij,ji->", R_y, R_t))) <= RTOL


def test_median_heuristic_sigma_definition():
    A = np.array([[0.0, 0.0], [0.0, 1.0], [0.0, 3.0], [0.0, 3.0]])
    # positive squared distances: 1, 9, 9, 4, 4 -> median 4 = 2 sigma^2 d with d = 2
    assert mi.median_heuristic_sigma(A) == pytest.approx(1.0)
    labels = np.array([[0.0], [1.0], [1.0], [1.0], [0.0]])
    assert mi.median_heuristic_sigma(labels) == pytest.approx(np.sqrt(0.5))  # med = 1, d = 1
    # duplicates are skipped even when the distance formula leaves rounding noise (non-integer centered values)
    rng = np.random.default_rng(20)
    odd = rng.choice([0.1, 0.7], size=(97, 1), p=[0.8, 0.2])
    assert mi.median_heuristic_sigma(odd) == pytest.approx(np.sqrt(0.36 / 2), rel=1e-9)


def test_median_heuristic_low_rank_sides_match_direct():
    """Median heuristic on sides with few distinct rows (3 imbalanced classes, X with 5 distinct rows): the
    median comes from distinct-row distances weighted by pair counts and must equal median_heuristic_sigma's."""
    rng = np.random.default_rng(21)
    m = 211
    y3 = rng.choice([0.0, 1.0, 2.5], size=m, p=[0.6, 0.3, 0.1])
    X_few = rng.standard_normal((5, 7))[rng.integers(0, 5, size=m)]
    _, _, T = _make(m, 7, 13, seed=21)
    ixt, iyt = mi.NormalizedHSIC(X_few, y3, median_heuristic=True).estimate(T)
    R_t = mi.hsic_operator_direct(T, mi.median_heuristic_sigma(T))
    R_x = mi.hsic_operator_direct(X_few, mi.median_heuristic_sigma(X_few))
    R_y = mi.hsic_operator_direct(y3[:, None], mi.median_heuristic_sigma(y3[:, None]))
    assert _rel(ixt, float(np.einsum("ij,ji->", R_x, R_t))) <= RTOL
    assert _rel(iyt, float(np.einsum("ij,ji->", R_y, R_t))) <= RTOL


# ------------------------------------------------------------------------------------------------ properties


def test_invariant_to_row_order():
    X, y, T = _make(200, 8, 12, seed=10)
    perm = np.random.default_rng(0).permutation(200)
    a = mi.NormalizedHSIC(X, y).estimate(T)
    b = mi.NormalizedHSIC(X[perm], y[perm]).estimate(T[perm])
    np.testing.assert_allclose(a, b, rtol=1e-11)
    am = mi.NormalizedHSIC(X, y, median_heuristic=True).estimate(T)
    bm = mi.NormalizedHSIC(X[perm], y[perm], median_heuristic=True).estimate(T[perm])
    np.testing.assert_allclose(am, bm, rtol=1e-11)


# The median-heuristic variant needs a larger ridge: with the paper's lambda = 1e-5 m its kernels are sharp (centered
# eigenvalues >> lambda), Rs is close to the centering projection H and every estimate saturates near its bound
# (see test_median_heuristic_saturates_at_paper_lambda). lambda_factor=1e-1 restores discrimination.
CASES = [(False, mi.DEFAULT_LAMBDA_FACTOR), (True, 1e-1)]


@pytest.mark.parametrize("median,lambda_factor", CASES)
def test_dependent_pair_scores_higher_than_independent(median, lambda_factor):
    rng = np.random.default_rng(11)
    m = 240
    X = _standardize(rng.standard_normal((m, 16)))
    y = (rng.random(m) < 0.5).astype(float)
    dependent = np.tanh(X @ rng.standard_normal((16, 24))) + 0.05 * rng.standard_normal((m, 24))
    independent = rng.standard_normal((m, 24))
    est = mi.NormalizedHSIC(X, y, median_heuristic=median, lambda_factor=lambda_factor)
    ixt_dep, _ = est.estimate(_standardize(dependent))
    ixt_ind, _ = est.estimate(_standardize(independent))
    assert ixt_dep > 2 * ixt_ind > 0


@pytest.mark.parametrize("median,lambda_factor", CASES)
def test_label_information_raises_iyt(median, lambda_factor):
    rng = np.random.default_rng(12)
    m = 240
    X = rng.standard_normal((m, 16))
    y = (rng.random(m) < 0.5).astype(float)
    noise = rng.standard_normal((m, 32))
    carries = noise + 1.5 * np.outer(y - 0.5, np.ones(32))
    est = mi.NormalizedHSIC(X, y, median_heuristic=median, lambda_factor=lambda_factor)
    _, iyt_with = est.estimate(_standardize(carries))
    _, iyt_without = est.estimate(_standardize(noise))
    assert iyt_with > 5 * iyt_without > 0


def test_median_heuristic_saturates_at_paper_lambda():
    """Documents a property of the estimator, not a wish: at lambda = 1e-5 m the median-heuristic I(X;T) sits near
    its bound m - 1 for dependent and independent T alike, and I(Y;T) near its bound 1 (Rs_Y has rank 1)."""
    rng = np.random.default_rng(11)
    m = 240
    X = _standardize(rng.standard_normal((m, 16)))
    y = (rng.random(m) < 0.5).astype(float)
    est = mi.NormalizedHSIC(X, y, median_heuristic=True)
    for T in (np.tanh(X @ rng.standard_normal((16, 24))), rng.standard_normal((m, 24))):
        ixt, iyt = est.estimate(_standardize(T))
        assert 0.8 * (m - 1) < ixt <= m - 1 and 0.8 < iyt <= 1.0


def test_constant_layer_gives_zero():
    X, y, _ = _make(100, 4, 4, seed=13)
    ixt, iyt = mi.NormalizedHSIC(X, y).estimate(np.ones((100, 3)))
    assert abs(ixt) < 1e-12 and abs(iyt) < 1e-12


# ------------------------------------------------------------------------------------------------ CKA


def test_cka_self_is_one_and_invariances():
    rng = np.random.default_rng(14)
    A = rng.standard_normal((150, 20))
    B = A @ rng.standard_normal((20, 30)) + rng.standard_normal((150, 30))
    assert mi.linear_cka(A, A) == pytest.approx(1.0, abs=1e-12)
    Q, _ = np.linalg.qr(rng.standard_normal((30, 30)))
    base = mi.linear_cka(A, B)
    assert 0.0 < base < 1.0
    assert mi.linear_cka(A, 3.7 * B @ Q + 5.0) == pytest.approx(base, rel=1e-10)
    assert mi.linear_cka(B, A) == pytest.approx(base, rel=1e-12)


def test_cka_matches_formula_in_both_forms():
    rng = np.random.default_rng(15)
    for m, da, db in ((60, 3, 4), (20, 50, 40)):  # feature-space form, then sample-space (Gram) form
        A, B = rng.standard_normal((m, da)), rng.standard_normal((m, db))
        Ac, Bc = A - A.mean(0), B - B.mean(0)
        expected = np.linalg.norm(Bc.T @ Ac) ** 2 / (np.linalg.norm(Ac.T @ Ac) * np.linalg.norm(Bc.T @ Bc))
        assert mi.linear_cka(A, B) == pytest.approx(expected, rel=1e-12)


# ------------------------------------------------------------------------------------------------ subsampling


def test_stratified_subsample_keeps_proportions_and_is_seeded():
    y = np.array([0] * 700 + [1] * 250 + [2] * 50)
    np.random.default_rng(0).shuffle(y)
    idx = stratified_sample(y, 200, seed=3)
    assert idx.shape == (200,) and np.all(np.diff(idx) > 0)
    counts = np.bincount(y[idx], minlength=3)
    np.testing.assert_array_equal(counts, [140, 50, 10])
    np.testing.assert_array_equal(idx, stratified_sample(y, 200, seed=3))
    assert not np.array_equal(idx, stratified_sample(y, 200, seed=4))
    odd = stratified_sample(y, 333, seed=1)
    c = np.bincount(y[odd], minlength=3)
    assert c.sum() == 333 and np.all(np.abs(c - np.array([700, 250, 50]) * 333 / 1000) < 1)


def test_stratified_subsample_all_rows_when_small_and_rare_class_kept():
    y = np.array([1, 0, 1, 1])
    np.testing.assert_array_equal(stratified_sample(y, 4, seed=0), np.arange(4))
    np.testing.assert_array_equal(stratified_sample(y, 10, seed=0), np.arange(4))
    rare = np.array([0] * 999 + [1])
    idx = stratified_sample(rare, 10, seed=0)
    assert idx.size == 10 and rare[idx].sum() == 1


# ------------------------------------------------------------------------------------------------ mi_metrics


def test_mi_metrics_table_and_single_setup(monkeypatch):
    X, y, T1 = _make(120, 6, 9, seed=16)
    _, _, T2 = _make(120, 6, 11, seed=17)
    built = []

    class Counting(mi.NormalizedHSIC):
        def __init__(self, *args, **kwargs):
            built.append(kwargs.get("median_heuristic", False))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(mi, "NormalizedHSIC", Counting)
    out = mi.mi_metrics(X, {3: T1, 7: T2}, y, sigma=50.0, lambda_factor=1e-5)
    assert sorted(built) == [False, True]
    assert set(out) == {3, 7}
    keys = {"hsic_ixt", "hsic_iyt", "hsic_ixt_median", "hsic_iyt_median", "cka_xt", "cka_yt"}
    for layer, T in ((3, T1), (7, T2)):
        row = out[layer]
        assert set(row) == keys and all(isinstance(v, float) for v in row.values())
        assert _rel(row["hsic_ixt"], mi.nhsic_direct(X, T)) <= RTOL
        assert _rel(row["hsic_iyt"], mi.nhsic_direct(y[:, None], T)) <= RTOL
        assert row["cka_xt"] == pytest.approx(mi.linear_cka(X, T))
        assert row["cka_yt"] == pytest.approx(mi.linear_cka(y[:, None], T))
        assert row["hsic_ixt_median"] > 0 and row["hsic_iyt_median"] > 0


# ------------------------------------------------------------------------------------------------ uncertainty


CI_KEYS = ("hsic_ixt_se", "hsic_ixt_ci_low", "hsic_ixt_ci_high", "hsic_iyt_se", "hsic_iyt_ci_low", "hsic_iyt_ci_high")


def test_half_sample_ci_contains_estimate_and_is_seeded():
    X, y, T = _make(160, 5, 7, seed=30)
    out = mi.mi_metrics(X, {1: T}, y, n_bootstrap=12, seed=3)[1]
    assert set(CI_KEYS) <= set(out)
    for name in ("ixt", "iyt"):
        assert out[f"hsic_{name}_se"] > 0
        assert out[f"hsic_{name}_ci_low"] < out[f"hsic_{name}"] < out[f"hsic_{name}_ci_high"]
        assert out[f"hsic_{name}_ci_high"] - out[f"hsic_{name}"] == pytest.approx(mi.CI_Z * out[f"hsic_{name}_se"])
    again = mi.mi_metrics(X, {1: T}, y, n_bootstrap=12, seed=3)[1]
    assert all(again[k] == out[k] for k in CI_KEYS)  # byte-identical with the same seed
    other = mi.mi_metrics(X, {1: T}, y, n_bootstrap=12, seed=4)[1]
    assert other["hsic_ixt_se"] != out["hsic_ixt_se"]
    assert not set(CI_KEYS) & set(mi.mi_metrics(X, {1: T}, y)[1])  # n_bootstrap 0: no CI


def test_half_samples_are_stratified_halves_without_replacement():
    y = np.r_[np.zeros(30), np.ones(10)]
    samples = mi.half_samples(y, 5, seed=0)
    assert len(samples) == 5 and all(s.size == 20 and np.unique(s).size == 20 for s in samples)
    assert all(y[s].sum() == 5 for s in samples)  # class shares kept
    assert not np.array_equal(samples[0], samples[1])
    assert all(np.array_equal(a, b) for a, b in zip(samples, mi.half_samples(y, 5, seed=0), strict=False))


def test_ci_narrows_with_more_rows():
    widths = {}
    for m in (100, 400):
        X, y, T = _make(m, 4, 6, seed=31)
        out = mi.mi_metrics(X, {1: T}, y, n_bootstrap=16, seed=0)[1]
        widths[m] = (out["hsic_ixt_se"], out["hsic_iyt_se"])
    # four times the rows: about half the SE for a sqrt(m)-consistent estimate
    assert widths[400][0] < 0.8 * widths[100][0] and widths[400][1] < 0.8 * widths[100][1]


def test_half_sample_se_matches_the_sd_over_independent_datasets():
    # the SE of one dataset should estimate the spread of the estimate over fresh datasets of the same size
    population = np.random.default_rng(34)
    W, v = population.standard_normal((3, 4)), population.standard_normal(4)  # one population, fresh rows
    estimates, ses = {"ixt": [], "iyt": []}, {"ixt": [], "iyt": []}
    for seed in range(30):
        rng = np.random.default_rng(100 + seed)
        X = rng.standard_normal((120, 3))
        y = (rng.random(120) < 0.4).astype(float)
        T = np.tanh(X @ W / np.sqrt(3)) + 0.5 * np.outer(y, v) + 0.3 * rng.standard_normal((120, 4))
        out = mi.mi_metrics(_standardize(X), {1: _standardize(T)}, y, n_bootstrap=10, seed=seed)[1]
        for name in estimates:
            estimates[name].append(out[f"hsic_{name}"])
            ses[name].append(out[f"hsic_{name}_se"])
    for name in estimates:
        ratio = np.mean(ses[name]) / np.std(estimates[name], ddof=1)
        assert 0.6 < ratio < 1.7, (name, ratio)


def test_ci_known_answers_independent_and_identical():
    rng = np.random.default_rng(32)
    m = 300
    x = _standardize(rng.standard_normal((m, 1)))
    y = (rng.random(m) < 0.5).astype(float)
    independent = mi.mi_metrics(x, {1: _standardize(rng.standard_normal((m, 1)))}, y, n_bootstrap=10, seed=0)[1]
    assert independent["hsic_ixt_ci_low"] == 0.0 or independent["hsic_ixt_ci_low"] < 0.01
    assert independent["hsic_ixt_ci_high"] < 0.05
    # X = T (one feature): one shared direction with eigenvalue ratio mu / (mu + lambda) ~ 0.976, squared ~ 0.95
    identical = mi.mi_metrics(x, {1: x.copy()}, y, n_bootstrap=10, seed=0)[1]
    assert 0.93 < identical["hsic_ixt_ci_low"] <= identical["hsic_ixt"] <= identical["hsic_ixt_ci_high"] < 0.97


def test_sigma_50_nhsic_is_nearly_its_linear_kernel_counterpart():
    # with sigma = 50 on standardised features K ~ 1 - D / (2 sigma^2 d): the centred kernel is the linear Gram
    # matrix / (sigma^2 d), so the estimate is a ridge-regularised linear dependence measure
    X, y, T = _make(200, 8, 16, seed=33)
    X, T = _standardize(X), _standardize(T)

    def rs_linear(A):
        Ac = A - A.mean(axis=0)
        S = Ac @ Ac.T / (50.0**2 * A.shape[1])
        return S @ np.linalg.inv(S + 1e-5 * A.shape[0] * np.eye(A.shape[0]))

    gaussian = mi.nhsic_direct(X, T)
    linear = float(np.einsum("ij,ji->", rs_linear(X), rs_linear(T)))
    assert gaussian > 1.0 and abs(gaussian - linear) < 1e-3 * gaussian


# ------------------------------------------------------------------------------------------------ cell_metrics


def _write_activations(directory, layers: dict, labels, splits, row_ids=None):
    from trusttrace.shards import write_manifest, write_shard

    directory.mkdir(parents=True)
    row_ids = np.arange(len(labels)) if row_ids is None else row_ids
    digests = {
        layer: write_shard(
            directory / layer_file(layer, "parquet"), row_ids, labels, splits, A.astype(np.float32), {"layer": layer}
        )
        for layer, A in layers.items()
    }
    write_manifest(directory, digests, {"model": "m"})
    return directory


SETTINGS = {
    "max_samples": 80,
    "input_layer": 1,
    "sigma": 50.0,
    "lambda_factor": 1e-5,
    "median_lambda_factor": 0.1,
    "seed": 0,
    "n_bootstrap": 6,
    "input_reference": "same_checkpoint",
}


def test_cell_metrics_subsamples_standardises_and_marks_degenerate_layers(tmp_path):
    rng = np.random.default_rng(40)
    n = 120
    labels = (rng.random(n) < 0.5).astype(int)
    splits = np.where(np.arange(n) < 100, "train", "test")
    X = rng.standard_normal((n, 6))
    T = np.tanh(X @ rng.standard_normal((6, 5))) + np.outer(labels, rng.standard_normal(5))
    directory = _write_activations(tmp_path / "a", {0: np.ones((n, 4)), 1: X, 2: T}, labels, splits)
    out = mi.cell_metrics(directory, SETTINGS)
    assert set(out) == {0, 1, 2} and "constant" in out[0]["degenerate"] and out[0]["m"] == 80
    # the same numbers as mi_metrics on the subsampled, standardised train rows
    rows = stratified_sample(labels[:100], 80, seed=0)
    Xs, Ts = _standardize(X[:100][rows].astype(np.float32).astype(float)), T[:100][rows].astype(np.float32)
    expected = mi.mi_metrics(Xs, {2: _standardize(Ts.astype(float))}, labels[:100][rows], n_bootstrap=6, seed=0)[2]
    assert out[2]["hsic_ixt"] == pytest.approx(expected["hsic_ixt"], rel=1e-9)
    assert out[2]["hsic_iyt_ci_high"] == pytest.approx(expected["hsic_iyt_ci_high"], rel=1e-9)
    assert out[1]["hsic_ixt"] > out[2]["hsic_ixt"]  # X against itself


def test_cell_metrics_first_checkpoint_reference_fixes_x(tmp_path):
    rng = np.random.default_rng(41)
    n = 100
    labels = (rng.random(n) < 0.5).astype(int)
    splits = np.array(["train"] * n)
    X0 = rng.standard_normal((n, 5))
    X1 = rng.standard_normal((n, 5))  # the input layer moved completely by the later checkpoint
    first = _write_activations(tmp_path / "first", {1: X0, 2: X0 @ rng.standard_normal((5, 5))}, labels, splits)
    later = _write_activations(tmp_path / "later", {1: X1, 2: X0 + 0.01 * X1}, labels, splits)
    fixed = {**SETTINGS, "input_reference": "first_checkpoint", "n_bootstrap": 0}
    same = mi.cell_metrics(later, {**SETTINGS, "n_bootstrap": 0})
    reference = mi.cell_metrics(later, fixed, reference_dir=first)
    # layer 2 of the later checkpoint carries X0: high against the first checkpoint's X, low against its own
    assert reference[2]["hsic_ixt"] > 3 * same[2]["hsic_ixt"]
    assert reference[2]["hsic_iyt"] == same[2]["hsic_iyt"]  # I(Y;T) does not depend on X
    with pytest.raises(TrustTraceError, match="must be given exactly when"):
        mi.cell_metrics(later, fixed)
    shuffled = _write_activations(tmp_path / "shuffled", {1: X0}, labels, splits, row_ids=np.arange(n)[::-1])
    with pytest.raises(TrustTraceError, match="train row_ids of .* differ"):
        mi.cell_metrics(later, fixed, reference_dir=shuffled)


def test_module_imports_no_torch_or_sklearn():
    code = (
        "import sys, trusttrace.mi; "
        "bad = [k for k in ('torch', 'sklearn') if k in sys.modules]; "
        "sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# ------------------------------------------------------------------------------------------------ errors


def _raises_one_line(match: str, fn, *args, **kwargs) -> None:
    with pytest.raises(TrustTraceError, match=match) as info:
        fn(*args, **kwargs)
    assert "\n" not in str(info.value)


def test_errors():
    X, y, T = _make(40, 3, 4, seed=18)
    est = mi.NormalizedHSIC(X, y)
    _raises_one_line(r"X must be a 2-D array", mi.NormalizedHSIC, X[:, 0], y)
    _raises_one_line(r"T must be a 2-D array", est.estimate, T[None])
    _raises_one_line(r"A must be a 2-D array", mi.gaussian_kernel, np.ones(5))
    _raises_one_line(r"X has 40 rows but T has 39", est.estimate, T[:39])
    _raises_one_line(r"X has 40 rows but y has 30", mi.NormalizedHSIC, X, y[:30])
    _raises_one_line(r"A has 5 rows but B has 6", mi.nhsic_direct, X[:5], T[:6])
    _raises_one_line(r"A has 5 rows but B has 6", mi.linear_cka, X[:5], T[:6])
    bad = T.copy()
    bad[3, 1] = np.nan
    _raises_one_line(r"T contains 1 NaN/inf", est.estimate, bad)
    bad[3, 1] = np.inf
    _raises_one_line(r"B contains 1 NaN/inf", mi.nhsic_direct, X, bad)
    _raises_one_line(r"X has 3 rows, need at least 4", mi.NormalizedHSIC, X[:3], y[:3])
    _raises_one_line(r"A has 3 rows, need at least 4", mi.linear_cka, X[:3], T[:3])
    _raises_one_line(r"y has a single class", mi.NormalizedHSIC, X, np.ones(40))
    _raises_one_line(r"y has a single class", mi.mi_metrics, X, {0: T}, np.zeros(40), sigma=50.0, lambda_factor=1e-5)
    _raises_one_line(r"sigma must be a finite number > 0", mi.NormalizedHSIC, X, y, sigma=0.0)
    _raises_one_line(r"lambda_factor must be a finite number > 0", mi.nhsic_direct, X, T, 50.0, -1.0)
    _raises_one_line(r"T_by_layer must be a non-empty dict", mi.mi_metrics, X, {}, y, sigma=50.0, lambda_factor=1e-5)
    _raises_one_line(r"all rows identical", mi.median_heuristic_sigma, np.ones((6, 2)))
    _raises_one_line(r"max_samples must be an integer >= 1", stratified_sample, y, 0, seed=0)
    _raises_one_line(r"y must be a 1-D label vector", stratified_sample, np.ones((4, 2)), 2, seed=0)
    _raises_one_line(r"n_bootstrap must be 0 \(off\) or >= 2", mi.mi_metrics, X, {0: T}, y, n_bootstrap=1)
    _raises_one_line(r"too few for half-samples", mi.mi_metrics, X[:6], {0: T[:6]}, y[:6], n_bootstrap=4)


# ------------------------------------------------------------------------------------------------ workflow


@pytest.mark.workflow
def test_workflow_input_reference_first_checkpoint(tmp_path_factory, tmp_path):
    """mi.input_reference first_checkpoint: the MI rule takes the first checkpoint's activations as X."""
    import json
    import shutil

    import yaml
    from helpers import REPO, run_workflow, tiny_workflow

    workdir = tmp_path / "copy"
    shutil.copytree(tiny_workflow(tmp_path_factory), workdir, symlinks=True)
    mi_dir = workdir / "results/mi/tiny"
    before = {c: json.loads((mi_dir / c / "reliability/layer=2.json").read_text()) for c in ("step0", "step8")}
    assert before["step8"]["input_reference"] == "same_checkpoint" and "hsic_ixt_ci_high" in before["step8"]
    config = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    config["mi"]["input_reference"] = "first_checkpoint"
    run_workflow(
        workdir, config, "--cores", "2", "results/mi/tiny/step0/reliability", "results/mi/tiny/step8/reliability"
    )
    after = {c: json.loads((mi_dir / c / "reliability/layer=2.json").read_text()) for c in ("step0", "step8")}
    assert after["step8"]["input_reference"] == "first_checkpoint"
    assert after["step0"]["hsic_ixt"] == before["step0"]["hsic_ixt"]  # the first checkpoint is its own reference
    assert after["step8"]["hsic_ixt"] != before["step8"]["hsic_ixt"]  # X fixed at step0 differs from step8's X
    assert after["step8"]["hsic_iyt"] == before["step8"]["hsic_iyt"]
