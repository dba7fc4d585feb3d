"""Mutual-information style dependence between inputs, labels and layer activations (normalized HSIC, linear CKA).

The paper's estimator (Qian et al. 2024, "Towards Tracing Trustworthiness Dynamics", section 4) is the normalized
HSIC of two representations A and B with the same m rows:

* Gaussian kernel ``K_ij = exp(-||a_i - a_j||^2 / (2 sigma^2 d))`` with ``d`` the feature count of that
  representation and ``sigma = 50`` (``DEFAULT_SIGMA``);
* ``K_c = K H`` with ``H = I - 11^T/m``, ``lambda = 1e-5 m`` (``DEFAULT_LAMBDA_FACTOR * m``);
* ``R = K_c (K_c + lambda I)^{-1}`` and the estimate ``tr(R_A R_B) = sum_ij R_A,ij R_B,ji``.

It is reported for (X, T) -- X the input representation, T a layer's activations -- as I(X;T), and for (Y, T) --
Y the labels as an m x 1 float column -- as I(Y;T). Everything here is float64: the paper's float32 code flips the
sign of I(Y;T) on real data.

Exact fast path (``NormalizedHSIC``). With ``S = H K H`` (the doubly centered kernel, symmetric positive
semi-definite, ``S 1 = 0``) and ``Rs = S (S + lambda I)^{-1}`` (symmetric PSD), the push-through identity gives
``R = K (S + lambda I)^{-1} H`` and hence ``tr(R_A R_B) = tr(Rs_A Rs_B) = <Rs_A, Rs_B>_F``, which is always >= 0.

* ``S`` is built from ``E = K - 11^T = expm1(-D / (2 sigma^2 d))`` (``S = H E H`` because ``H 1 = 0``), so the
  nearly constant kernels of the paper's sigma (``K ~ 1 - 4e-4``) lose no digits to ``K - mean(K)``.
* Per layer T: one Cholesky factorisation of ``S_T + lambda I`` (SPD, eigenvalues >= lambda) and, when X is
  dense, its inverse ``P_T`` from that factor (LAPACK potrf + potri, about m^3 flops in all, against about
  19 m^3 for the four general inverses and four products of the direct formula). Then
  ``<Rs_X, Rs_T> = tr(Rs_X) - lambda <Rs_X, P_T>`` in O(m^2), with ``Rs_X`` precomputed once per
  (checkpoint, dimension) and reused for every layer.
* A side with few distinct rows (the label column: 2 distinct values) is low rank: with ``U`` the m x c
  indicator of the distinct rows, ``Z = H U`` and ``E_C`` the c x c ``expm1`` kernel of the distinct rows,
  ``S = Z E_C Z^T`` and ``Rs = Z N Z^T`` with ``N = (E_C Z^T Z + lambda I_c)^{-1} E_C``. Then
  ``tr(Rs_Y Rs_T) = tr(N (S_T Z)^T (S_T + lambda I)^{-1} Z)``: O(m^2 c) work per layer and no ``m - ...``
  cancellation, which matters because I(Y;T) is small when the label kernel is nearly constant.

Only lower triangles are formed (BLAS syrk for the Gram matrix, half the elementwise work); one m x m buffer per
``NormalizedHSIC`` is reused for kernel, factor and inverse of every layer.

Threads: the matrix work of the fast path goes through SciPy's BLAS/LAPACK only. NumPy ships a second OpenBLAS,
and two OpenBLAS thread pools alternating in one process spin against each other (several-fold slowdowns on a
2-core machine). The direct reference functions use NumPy (``np.linalg.inv``) as the paper-literal baseline.
Multi-threaded OpenBLAS Cholesky/inverse degrade badly when the cores are oversubscribed (other jobs running):
give MI jobs as many BLAS threads as cores they own (``OPENBLAS_NUM_THREADS``). The O(m^2) kernel passes run on
up to ``MAX_THREADS`` Python threads (NumPy releases the GIL), never more than that thread budget.

Better estimators reported beside the paper's: the same normalized HSIC with sigma from the median heuristic
(``median_heuristic_sigma``, one sigma per representation), and linear CKA (Kornblith et al. 2019). Note: with
the median heuristic the kernels are sharp (centered eigenvalues far above ``lambda = 1e-5 m``), ``Rs`` is close
to the centering projection and the estimate saturates near its bounds (I(X;T) ~ m - 1, I(Y;T) ~ 1 for a binary
label) whatever T is; it needs a larger ``lambda_factor`` (about 1e-2 to 1e-1) to discriminate.

What the paper's setting measures. With sigma = 50 on standardised features the kernel is ``exp(-D / (2 sigma^2 d))``
with ``D / d ~ 2`` per pair, i.e. ``K ~ 1 - D / (5000 d)``: the centred kernel is the linear Gram matrix divided by
``sigma^2 d`` up to terms of relative size ~2e-4, and the estimate equals its linear-kernel counterpart to within
about 1e-3 (measured: |difference| <= 2.7e-3 on I(X;T) values of 2.5-6.7, <= 6e-5 on I(Y;T), synthetic m = 400;
<= 5e-4 on the tiny test model's activations). It is a ridge-regularised linear dependence measure (roughly, the
number of shared directions whose variance clears lambda), not a general mutual information.

Uncertainty (``subsample_standard_errors``, config ``mi.n_bootstrap``). The SE of a cell's nHSIC comes from seeded,
class-stratified half-samples without replacement (delete-m/2 jackknife): SE = SD of the half-sample estimates
(factor b / (m - b) = 1), CI = estimate +- 1.96 SE (low end clipped at 0). Checked on simulated data against the
spread over fresh datasets of one population: SE / Monte-Carlo SD 0.95 (I(Y;T)) to 1.2-1.3 (I(X;T), conservative).
30 half-samples cost about 5-6x the point estimates of the same layers (m = 2000; benchmarks/bench_hsic.py).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np
from scipy.linalg import blas as _blas
from scipy.linalg import lapack as _lapack

from trusttrace.data import stratified_sample
from trusttrace.errors import TrustTraceError

__all__ = [
    "DEFAULT_LAMBDA_FACTOR",
    "DEFAULT_SIGMA",
    "NormalizedHSIC",
    "cell_metrics",
    "gaussian_kernel",
    "half_samples",
    "hsic_operator_direct",
    "linear_cka",
    "median_heuristic_sigma",
    "mi_metrics",
    "nhsic_direct",
    "subsample_standard_errors",
]

DEFAULT_SIGMA = 50.0
DEFAULT_LAMBDA_FACTOR = 1e-5
# Uncertainty of nHSIC: half-samples (stratified, without replacement) of the cell's rows; see
# ``subsample_standard_errors``. CIs are value +- CI_Z SE (low end clipped at 0, nHSIC >= 0).
DEFAULT_N_BOOTSTRAP = 30
CI_Z = 1.959963984540054
INPUT_REFERENCES = ("same_checkpoint", "first_checkpoint")

MIN_ROWS = 4
# A side (X or Y) with at most this many distinct rows uses the exact low-rank path; more use the dense path.
MAX_LOWRANK_DISTINCT = 64
# Threads for the O(m^2) elementwise kernel passes (capped by the CPUs this process may use).
MAX_THREADS = 4
PARALLEL_MIN_ROWS = 512  # below this the passes run inline
# Median heuristic: a pair of rows is a duplicate when ||a_i - a_j||^2 <= DUPLICATE_RTOL (||c_i||^2 + ||c_j||^2),
# c the column-centered rows (the distance formula's rounding noise for identical rows is ~1e-16 of that).
DUPLICATE_RTOL = 1e-10


# ----------------------------------------------------------------------------------------------------------------
# validation


def _as_matrix(A, name: str) -> np.ndarray:
    """``A`` as a C-contiguous float64 (m, d) array with m >= MIN_ROWS, d >= 1 and only finite values."""
    try:
        arr = np.asarray(A, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TrustTraceError(f"mi: {name} must be a numeric array, could not convert it to float64 ({exc})") from None
    if arr.ndim != 2:
        raise TrustTraceError(
            f"mi: {name} must be a 2-D array (rows = samples, columns = features), got shape {arr.shape}"
        )
    m, d = arr.shape
    if m < MIN_ROWS:
        raise TrustTraceError(f"mi: {name} has {m} rows, need at least {MIN_ROWS} samples")
    if d < 1:
        raise TrustTraceError(f"mi: {name} has no feature columns (shape {arr.shape}), need at least one")
    if not np.isfinite(arr).all():
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise TrustTraceError(f"mi: {name} contains {bad} NaN/inf values, drop or fix those rows before estimating")
    return np.ascontiguousarray(arr)


def _as_labels(y, name: str = "y") -> np.ndarray:
    """Labels as an (m, k) float64 matrix: a 1-D label vector becomes an m x 1 column. Needs >= 2 classes."""
    try:
        arr = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TrustTraceError(
            f"mi: {name} must be numeric labels (e.g. 0/1), could not convert to float64 ({exc})"
        ) from None
    if arr.ndim == 1:
        arr = arr[:, None]
    Y = _as_matrix(arr, name)
    if not (Y == Y[0]).all():
        return Y
    raise TrustTraceError(f"mi: {name} has a single class ({Y[0].tolist()}), need at least two distinct labels")


def _check_same_rows(m: int, B: np.ndarray, name_a: str, name_b: str) -> None:
    if B.shape[0] != m:
        raise TrustTraceError(
            f"mi: {name_a} has {m} rows but {name_b} has {B.shape[0]}, rows must be the same samples in the same order"
        )


def _check_params(sigma: float, lambda_factor: float) -> tuple[float, float]:
    try:
        sigma, lambda_factor = float(sigma), float(lambda_factor)
    except (TypeError, ValueError):
        raise TrustTraceError(
            f"mi: sigma and lambda_factor must be numbers, got {sigma!r} and {lambda_factor!r}"
        ) from None
    if not (np.isfinite(sigma) and sigma > 0):
        raise TrustTraceError(f"mi: sigma must be a finite number > 0, got {sigma!r}")
    if not (np.isfinite(lambda_factor) and lambda_factor > 0):
        raise TrustTraceError(f"mi: lambda_factor must be a finite number > 0, got {lambda_factor!r}")
    return sigma, lambda_factor


# ----------------------------------------------------------------------------------------------------------------
# kernels


def _sq_dists(A: np.ndarray) -> np.ndarray:
    """``||a_i - a_j||^2`` as an (m, m) array (NumPy), diagonal exactly 0, all entries >= 0."""
    Ac = A - A.mean(axis=0)
    n = np.einsum("ij,ij->i", Ac, Ac)
    D = n[:, None] + n[None, :] - 2.0 * (Ac @ Ac.T)
    np.maximum(D, 0.0, out=D)
    np.fill_diagonal(D, 0.0)
    return D


def _no_distinct_rows(name: str) -> TrustTraceError:
    return TrustTraceError(f"mi: {name} has all rows identical, the median heuristic needs at least two distinct rows")


def _median_sq_dist(A: np.ndarray, name: str) -> float:
    """Median of ``||a_i - a_j||^2`` over the pairs i < j of distinct rows (see ``median_heuristic_sigma``)."""
    Ac = A - A.mean(axis=0)
    n = np.einsum("ij,ij->i", Ac, Ac)
    i, j = np.triu_indices(A.shape[0], 1)
    D = _sq_dists(A)[i, j]
    pos = D[D > DUPLICATE_RTOL * (n[i] + n[j])]
    if pos.size == 0:
        raise _no_distinct_rows(name)
    return float(np.median(pos))


def median_heuristic_sigma(A) -> float:
    """Sigma from the median heuristic for the paper's kernel ``exp(-||a_i - a_j||^2 / (2 sigma^2 d))``.

    With ``med`` the median (NumPy's: mean of the two middle values for an even count) of the squared Euclidean
    distances ``||a_i - a_j||^2`` over the pairs i < j of distinct rows, sigma is chosen so that
    ``2 sigma^2 d = med``, i.e. ``sigma = sqrt(med / (2 d))``, and the kernel becomes ``exp(-||a_i - a_j||^2 / med)``.
    Duplicate rows (e.g. two samples with the same label) are skipped, otherwise a label column would get
    ``med = 0``; with column-centered rows c_i, a pair counts as duplicate when its squared distance is at most
    ``DUPLICATE_RTOL * (||c_i||^2 + ||c_j||^2)`` (rounding noise of the distance formula).
    For a 0/1 label column this gives ``med = 1``. Raises ``TrustTraceError`` when all rows are identical.
    """
    A = _as_matrix(A, "A")
    med = _median_sq_dist(A, "A")
    return float(np.sqrt(med / (2.0 * A.shape[1])))


def gaussian_kernel(A: np.ndarray, sigma: float = DEFAULT_SIGMA) -> np.ndarray:
    """(m, d) -> (m, m) Gaussian kernel ``K_ij = exp(-||a_i - a_j||^2 / (2 sigma^2 d))`` (diagonal exactly 1)."""
    A = _as_matrix(A, "A")
    sigma, _ = _check_params(sigma, DEFAULT_LAMBDA_FACTOR)
    return np.exp(_sq_dists(A) * (-1.0 / (2.0 * sigma * sigma * A.shape[1])))


# ----------------------------------------------------------------------------------------------------------------
# direct reference (the literal formula; also the speed baseline)


def hsic_operator_direct(
    A: np.ndarray, sigma: float = DEFAULT_SIGMA, lambda_factor: float = DEFAULT_LAMBDA_FACTOR
) -> np.ndarray:
    """The paper's ``R = K_c (K_c + lambda I)^{-1}`` with ``K_c = K H``, ``lambda = lambda_factor * m`` (m x m).

    Literal reference, one general inverse (``np.linalg.inv``); ``K H`` is formed as ``K`` minus its row means,
    which is the same matrix as the product with ``H = I - 11^T/m``.
    """
    A = _as_matrix(A, "A")
    sigma, lambda_factor = _check_params(sigma, lambda_factor)
    m = A.shape[0]
    K = gaussian_kernel(A, sigma)
    Kc = K - K.mean(axis=1, keepdims=True)  # K H
    lam = lambda_factor * m
    return Kc @ np.linalg.inv(Kc + lam * np.eye(m))


def nhsic_direct(
    A: np.ndarray, B: np.ndarray, sigma: float = DEFAULT_SIGMA, lambda_factor: float = DEFAULT_LAMBDA_FACTOR
) -> float:
    """Normalized HSIC ``tr(R_A R_B) = sum_ij R_A,ij R_B,ji`` with both R from ``hsic_operator_direct``.

    Two general inverses per call: the float64 reference and the speed baseline for ``NormalizedHSIC``.
    """
    A = _as_matrix(A, "A")
    B = _as_matrix(B, "B")
    _check_same_rows(A.shape[0], B, "A", "B")
    RA = hsic_operator_direct(A, sigma, lambda_factor)
    RB = hsic_operator_direct(B, sigma, lambda_factor)
    return float(np.einsum("ij,ji->", RA, RB))


# ----------------------------------------------------------------------------------------------------------------
# fast exact path


def _workers() -> int:
    """Threads for the elementwise kernel passes: the CPUs this process may use, capped by MAX_THREADS and by a
    thread budget the job was given through OPENBLAS_NUM_THREADS / OMP_NUM_THREADS (Snakemake sets these to the
    rule's ``threads``), so a 1-thread job stays on one core."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) > 0:
            n = min(n, int(value))
    return max(1, min(MAX_THREADS, n))


_POOL: ThreadPoolExecutor | None = None


def _column_blocks(m: int, fn) -> list:
    """Run ``fn(a, b)`` over column blocks [a, b) of the lower triangle of an (m, m) Fortran-ordered matrix.

    Block edges give each block about the same lower-triangle area. NumPy releases the GIL in its elementwise
    loops, so the O(m^2) kernel passes use all allowed cores, as the BLAS calls around them do. Small matrices
    run inline.
    """
    global _POOL
    n = _workers()
    k = 16 if m >= 256 else 1  # blocks also keep the diagonal-block index work small when run inline
    edges = np.unique(np.round(m * (1.0 - np.sqrt(1.0 - np.arange(k + 1) / k))).astype(int))
    if n == 1 or m < PARALLEL_MIN_ROWS:
        return [fn(a, b) for a, b in zip(edges[:-1], edges[1:], strict=False)]
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=n, thread_name_prefix="trusttrace-mi")
    return list(_POOL.map(fn, edges[:-1], edges[1:]))


@lru_cache(maxsize=64)
def _lower_mask(width: int, strict: bool) -> np.ndarray:
    return np.asfortranarray(np.tri(width, k=0 if strict else -1))


def _zero_upper_of_diag_block(G: np.ndarray, a: int, b: int, strict: bool) -> None:
    """Zero the part of the diagonal block G[a:b, a:b] above (``strict``) or on and above the diagonal."""
    blk = G[a:b, a:b]
    np.multiply(blk, _lower_mask(b - a, strict), out=blk)


def _centered_kernel_fast(A: np.ndarray, sigma: float | None, name: str, out: np.ndarray | None = None) -> np.ndarray:
    """Lower triangle of ``S = H (K - 11^T) H`` (Fortran order, m x m, strict upper triangle exactly 0) for
    ``K = exp(-D / (2 sigma^2 d))``; ``sigma=None``: median heuristic (``2 sigma^2 d`` = median positive D).

    ``K - 11^T = expm1(-D / scale)`` is exact to rounding even when K ~ 1 - 1e-4, and ``H (K - 11^T) H = H K H``.
    Only the lower triangle is computed (BLAS syrk, half the elementwise work); row sums of the symmetric
    matrix come from the lower triangle's row and column sums. ``out``: an (m, m) Fortran-ordered float64
    buffer whose strict upper triangle is 0 (reused across layers: no page faults for a fresh m x m array);
    the result is written there.
    """
    m, d = A.shape
    Ac = A - A.mean(axis=0)  # distances are translation invariant; centering cuts cancellation in n_i + n_j - 2 g_ij
    n = np.einsum("ij,ij->i", Ac, Ac)
    scale = 1.0 if sigma is None else 2.0 * sigma * sigma * d
    h = n / scale
    G = np.zeros((m, m), order="F") if out is None else out
    # lower triangle of 2 Ac Ac^T / scale; Ac.T is a Fortran-contiguous (d, m) view, so no copy in the wrapper
    G = _blas.dsyrk(2.0 / scale, Ac.T, c=G, trans=1, lower=1, overwrite_c=1)

    def neg_dist(a: int, b: int) -> None:  # G = -D / scale on the lower triangle, 0 on and above the diagonal
        blk = G[a:, a:b]
        blk -= h[a:, None]
        blk -= h[None, a:b]
        _zero_upper_of_diag_block(G, a, b, strict=False)

    _column_blocks(m, neg_dist)
    if sigma is None:  # here G = -D (scale 1): median over pairs i > j of distinct rows

        def distinct_pair_dists(a: int, b: int) -> np.ndarray:
            D = -G[a:, a:b]
            return D[D > DUPLICATE_RTOL * (n[a:, None] + n[None, a:b])]

        pos = np.concatenate(_column_blocks(m, distinct_pair_dists))
        if pos.size == 0:
            raise _no_distinct_rows(name)
        med = float(np.median(pos))
        _column_blocks(m, lambda a, b: np.multiply(G[a:, a:b], 1.0 / med, out=G[a:, a:b]))

    def expm1_sums(a: int, b: int) -> tuple[int, np.ndarray, np.ndarray]:
        blk = G[a:, a:b]
        np.expm1(blk, out=blk)  # zeros (diagonal: K_ii = 1; upper part) stay 0
        return a, blk.sum(axis=0), blk.sum(axis=1)

    col_part = np.zeros(m)  # sum_{i >= j} E_ij
    row_part = np.zeros(m)  # sum_{j <= i} E_ij
    for a, col, row in _column_blocks(m, expm1_sums):
        col_part[a : a + col.size] = col
        row_part[a:] += row
    r = (col_part + row_part) / m  # row means of the symmetric E (E_ii = 0)
    mu = float(r.mean())
    rc = r - mu

    def center(a: int, b: int) -> None:  # E_ij - r_i - r_j + mu
        blk = G[a:, a:b]
        blk -= rc[a:, None]
        blk -= r[None, a:b]
        _zero_upper_of_diag_block(G, a, b, strict=True)

    _column_blocks(m, center)
    return G


class _DenseSide:
    """Precomputed ``Rs_A`` for ``tr(Rs_A Rs_T) = tr(Rs_A) - lambda <Rs_A, P_T>`` (P_T lower triangle only)."""

    def __init__(self, S: np.ndarray, lam: float):
        """``S``: lower triangle of the centered kernel, Fortran order, strict upper triangle 0."""
        m = S.shape[0]
        diag = np.diag_indices(m)
        A = np.array(S, order="F")
        A[diag] += lam
        c, info = _lapack.dpotrf(A, lower=1, overwrite_a=1, clean=0)
        if info != 0:
            raise TrustTraceError(
                f"mi: Cholesky of the centered kernel + lambda I failed (info={info}); increase lambda_factor"
            )
        P, info = _lapack.dpotri(c, lower=1, overwrite_c=1)
        if info != 0:
            raise TrustTraceError(
                f"mi: inverse of the centered kernel + lambda I failed (info={info}); increase lambda_factor"
            )
        # P = (S + lambda I)^{-1}, lower triangle, strict upper 0 (potrf/potri leave it untouched).
        # Rs = S P: off-diagonal entries are exactly -lambda P_ij; the diagonal (S P)_ii = sum_k S_ik P_ik is a
        # row dot product (so small diagonal entries keep full relative precision), from the lower triangles:
        # sum_{k<=i} S_ik P_ik + sum_{k>i} S_ki P_ki.
        rs_diag = np.einsum("ij,ij->i", S, P) + np.einsum("ij,ij->j", S, P) - np.diagonal(S) * np.diagonal(P)
        self.trace = float(rs_diag.sum())
        # Weights for <Rs, P_T> over lower triangles: 2 Rs_ij below the diagonal, Rs_ii on it, 0 above.
        W = P
        W *= -2.0 * lam
        W[diag] = rs_diag
        self.W = W

    def contribution(self, P_lower: np.ndarray, lam: float) -> float:
        return self.trace - lam * float(np.einsum("ij,ij->", self.W, P_lower))


class _LowRankSide:
    """``Rs_A = Z N Z^T`` for A with c distinct rows: ``Z = H U`` (m x c), ``N = (E_C Z^T Z + lambda I)^{-1} E_C``."""

    def __init__(self, inverse: np.ndarray, E_C: np.ndarray, lam: float):
        m = inverse.shape[0]
        c = E_C.shape[0]
        counts = np.bincount(inverse, minlength=c).astype(np.float64)
        U = np.zeros((m, c))
        U[np.arange(m), inverse] = 1.0
        self.Z = np.asfortranarray(U - counts[None, :] / m)  # H U
        Gz = np.diag(counts) - np.outer(counts, counts) / m  # Z^T Z exactly
        M = _blas.dgemm(1.0, E_C, Gz) + lam * np.eye(c)
        self.N = _small_solve(M, E_C)
        self.trace = float(np.einsum("ij,ji->", self.N, Gz))  # tr(Z N Z^T) = tr(N Z^T Z)

    def contribution(self, SZ: np.ndarray, PZ: np.ndarray) -> float:
        # tr(N Z^T Rs_T Z) with Z^T Rs_T Z = (S_T Z)^T (S_T + lambda I)^{-1} Z
        return float(np.einsum("ij,ji->", self.N, _blas.dgemm(1.0, SZ, PZ, trans_a=1)))


def _small_solve(M: np.ndarray, B: np.ndarray) -> np.ndarray:
    lu, piv, x, info = _lapack.dgesv(M, B)
    if info != 0:
        raise TrustTraceError(f"mi: singular label system (info={info}); increase lambda_factor")
    return x


def _distinct_rows(A: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(distinct rows, inverse index) when A has at most ``limit`` distinct rows, else None."""
    # quick exit: distinct values of a random projection imply distinct rows
    proj = np.einsum("ij,j->i", A, np.random.default_rng(0).standard_normal(A.shape[1]))
    if np.unique(proj).size > limit:
        return None
    uniq, inverse = np.unique(A, axis=0, return_inverse=True)
    if uniq.shape[0] > limit:
        return None
    return uniq, np.asarray(inverse).reshape(-1)


class NormalizedHSIC:
    """Exact fast normalized HSIC of one input representation X and labels y against many layers T.

    ``X``: (m, d_X) input representation; ``y``: (m,) labels or an (m, k) label matrix (a 1-D vector is used as
    the paper's m x 1 float column). The parts that depend only on X and y (``Rs_X`` dense, ``Rs_Y`` low rank
    when y has at most ``MAX_LOWRANK_DISTINCT`` distinct rows) are computed once here; ``estimate(T)`` then costs
    one Cholesky factorisation and one triangular inverse of an m x m matrix.

    ``median_heuristic=True`` replaces ``sigma`` by ``median_heuristic_sigma`` of each representation (X, y and
    every T separately). Results equal ``nhsic_direct`` up to float64 rounding.
    """

    def __init__(
        self,
        X: np.ndarray,
        y: np.ndarray,
        sigma: float = DEFAULT_SIGMA,
        lambda_factor: float = DEFAULT_LAMBDA_FACTOR,
        median_heuristic: bool = False,
    ):
        X = _as_matrix(X, "X")
        Y = _as_labels(y, "y")
        m = X.shape[0]
        _check_same_rows(m, Y, "X", "y")
        self.sigma, self.lambda_factor = _check_params(sigma, lambda_factor)
        self.median_heuristic = bool(median_heuristic)
        self.m = m
        self.lam = self.lambda_factor * m
        self._sigma_arg = None if self.median_heuristic else self.sigma
        self._work: np.ndarray | None = None  # m x m Fortran buffer, strict upper triangle kept at 0
        self.sides = {"X": self._make_side(X, "X"), "Y": self._make_side(Y, "y")}

    def _make_side(self, A: np.ndarray, name: str):
        d = A.shape[1]
        distinct = _distinct_rows(A, MAX_LOWRANK_DISTINCT)
        if distinct is not None and distinct[0].shape[0] == 1:
            raise TrustTraceError(f"mi: {name} has all rows identical, it carries no information to compare")
        if distinct is not None and not self.median_heuristic:
            uniq, inverse = distinct
            E_C = np.expm1(-_sq_dists_small(uniq) / (2.0 * self.sigma * self.sigma * d))
            return _LowRankSide(inverse, E_C, self.lam)
        if distinct is not None:  # median heuristic on a low-rank side, from the distinct rows and their counts
            uniq, inverse = distinct
            scale = _pair_median(uniq, np.bincount(inverse, minlength=uniq.shape[0]).astype(np.float64), name)
            return _LowRankSide(inverse, np.expm1(-_sq_dists_small(uniq) / scale), self.lam)
        return _DenseSide(_centered_kernel_fast(A, self._sigma_arg, name, out=self._workspace()), self.lam)

    def _workspace(self) -> np.ndarray:
        # One m x m buffer reused by every layer (kernel, factor and inverse are all computed in place): a fresh
        # 20 MB array per layer would cost page faults comparable to the elementwise passes. Not thread-safe:
        # use one NormalizedHSIC per thread.
        if self._work is None:
            self._work = np.zeros((self.m, self.m), order="F")
        return self._work

    def _centered_kernel(self, T: np.ndarray) -> np.ndarray:
        return _centered_kernel_fast(T, self._sigma_arg, "T", out=self._workspace())

    def estimate(self, T: np.ndarray) -> tuple[float, float]:
        """(I(X;T), I(Y;T)) for one layer's activations ``T`` of shape (m, d_T)."""
        T = _as_matrix(T, "T")
        _check_same_rows(self.m, T, "X", "T")
        S = self._centered_kernel(T)  # lower triangle, Fortran order
        lowrank = {k: s for k, s in self.sides.items() if isinstance(s, _LowRankSide)}
        # S_T Z (symmetric product from the lower triangle) before S is overwritten by its factor
        SZ = {k: _blas.dsymm(1.0, S, s.Z, side=0, lower=1) for k, s in lowrank.items()}
        S[np.diag_indices_from(S)] += self.lam
        c, info = _lapack.dpotrf(S, lower=1, overwrite_a=1, clean=0)
        if info != 0:
            raise TrustTraceError(
                f"mi: Cholesky of T's centered kernel + lambda I failed (info={info}); increase lambda_factor"
            )
        out = {}
        for k, s in lowrank.items():
            PZ, info = _lapack.dpotrs(c, s.Z, lower=1)
            out[k] = s.contribution(SZ[k], PZ)
        if len(lowrank) < len(self.sides):
            P, info = _lapack.dpotri(c, lower=1, overwrite_c=1)
            if info != 0:
                raise TrustTraceError(f"mi: inverse of T's centered kernel + lambda I failed (info={info})")
            for k, s in self.sides.items():
                if k not in out:
                    out[k] = s.contribution(P, self.lam)
        return float(out["X"]), float(out["Y"])


def _sq_dists_small(U: np.ndarray) -> np.ndarray:
    diff = U[:, None, :] - U[None, :, :]
    return np.einsum("abk,abk->ab", diff, diff)


def _pair_median(uniq: np.ndarray, counts: np.ndarray, name: str) -> float:
    """``median_heuristic_sigma``'s ``med`` from the distinct rows ``uniq`` and their counts: pair (a, b), a < b,
    stands for ``counts[a] * counts[b]`` row pairs (NumPy's median: mean of the two middle values)."""
    D_C = _sq_dists_small(uniq)
    centered = uniq - (counts @ uniq) / counts.sum()
    norms = np.einsum("ij,ij->i", centered, centered)
    a, b = np.triu_indices(D_C.shape[0], 1)
    vals = D_C[a, b]
    weights = counts[a].astype(np.int64) * counts[b].astype(np.int64)
    keep = vals > DUPLICATE_RTOL * (norms[a] + norms[b])
    vals, weights = vals[keep], weights[keep]
    if vals.size == 0:
        raise _no_distinct_rows(name)
    order = np.argsort(vals, kind="stable")
    vals, cum = vals[order], np.cumsum(weights[order])
    total = int(cum[-1])
    lo = vals[np.searchsorted(cum, (total - 1) // 2, side="right")]  # 0-based order statistics
    hi = vals[np.searchsorted(cum, total // 2, side="right")]
    return float(0.5 * (lo + hi))


# ----------------------------------------------------------------------------------------------------------------
# linear CKA


def linear_cka(A: np.ndarray, B: np.ndarray) -> float:
    """Linear CKA (Kornblith et al. 2019): ``||B^T A||_F^2 / (||A^T A||_F ||B^T B||_F)`` on column-centered A, B.

    In [0, 1]; invariant to orthogonal transforms and isotropic scaling of either side. Uses the feature-space
    (d x d) or the sample-space (m x m Gram) form, whichever is cheaper; both are the same number.
    Raises ``TrustTraceError`` when a side is constant (all rows equal).
    """
    A = _as_matrix(A, "A")
    B = _as_matrix(B, "B")
    _check_same_rows(A.shape[0], B, "A", "B")
    m, da = A.shape
    db = B.shape[1]
    Ac = A - A.mean(axis=0)
    Bc = B - B.mean(axis=0)
    AcT, BcT = Ac.T, Bc.T  # Fortran-contiguous views: no copies inside the BLAS wrapper
    if m * (da * db + da * da + db * db) <= m * m * (da + db):
        AtA = _blas.dgemm(1.0, AcT, AcT, trans_b=1)
        BtB = _blas.dgemm(1.0, BcT, BcT, trans_b=1)
        BtA = _blas.dgemm(1.0, BcT, AcT, trans_b=1)
        num = float(np.einsum("ij,ij->", BtA, BtA))
        na = float(np.sqrt(np.einsum("ij,ij->", AtA, AtA)))
        nb = float(np.sqrt(np.einsum("ij,ij->", BtB, BtB)))
    else:
        Ga = _blas.dgemm(1.0, AcT, AcT, trans_a=1)
        Gb = _blas.dgemm(1.0, BcT, BcT, trans_a=1)
        num = float(np.einsum("ij,ij->", Ga, Gb))
        na = float(np.sqrt(np.einsum("ij,ij->", Ga, Ga)))
        nb = float(np.sqrt(np.einsum("ij,ij->", Gb, Gb)))
    if na == 0.0 or nb == 0.0:
        which = "A" if na == 0.0 else "B"
        raise TrustTraceError(f"mi: {which} is constant (all rows equal), linear CKA is undefined")
    return num / (na * nb)


# ----------------------------------------------------------------------------------------------------------------
# sampling and the per-cell table


def mi_metrics(
    X: np.ndarray,
    T_by_layer: Mapping[int, np.ndarray],
    y: np.ndarray,
    *,
    sigma: float = DEFAULT_SIGMA,
    lambda_factor: float = DEFAULT_LAMBDA_FACTOR,
    median_lambda_factor: float | None = None,
    n_bootstrap: int = 0,
    seed: int = 0,
) -> dict[int, dict[str, float]]:
    """Per layer: ``hsic_ixt``, ``hsic_iyt`` (paper's sigma), ``hsic_ixt_median``, ``hsic_iyt_median`` (median
    heuristic sigma per representation), ``cka_xt``, ``cka_yt`` (linear CKA; y as an m x 1 float column).
    With ``n_bootstrap`` > 0 also ``hsic_{ixt,iyt}_se`` and ``hsic_{ixt,iyt}_ci_{low,high}`` of the paper's
    estimator from ``n_bootstrap`` seeded half-samples (``subsample_standard_errors``).

    Builds one ``NormalizedHSIC`` per sigma choice and reuses it across all layers. The median-heuristic variant
    uses ``median_lambda_factor`` (default: ``lambda_factor``): its kernels are sharp, and at the paper's 1e-5 its
    estimates saturate near their upper bound whatever T is (see the module docstring); ~1e-1 discriminates.
    """
    if not isinstance(T_by_layer, Mapping) or len(T_by_layer) == 0:
        raise TrustTraceError("mi: T_by_layer must be a non-empty dict {layer index: (m, d) activations}")
    if n_bootstrap is None or int(n_bootstrap) < 0 or int(n_bootstrap) == 1:
        raise TrustTraceError(f"mi: n_bootstrap must be 0 (off) or >= 2 half-samples, got {n_bootstrap!r}")
    Xm = _as_matrix(X, "X")
    Y = _as_labels(y, "y")
    _check_same_rows(Xm.shape[0], Y, "X", "y")
    if n_bootstrap and Xm.shape[0] // 2 < MIN_ROWS:
        raise TrustTraceError(f"mi: {Xm.shape[0]} rows are too few for half-samples; set mi.n_bootstrap: 0")
    paper = NormalizedHSIC(Xm, Y, sigma=sigma, lambda_factor=lambda_factor)
    median = NormalizedHSIC(
        Xm, Y, sigma=sigma, lambda_factor=median_lambda_factor or lambda_factor, median_heuristic=True
    )
    out: dict[int, dict[str, float]] = {}
    for layer, T in T_by_layer.items():
        Tm = _as_matrix(T, f"T[layer {layer}]")
        _check_same_rows(Xm.shape[0], Tm, "X", f"T[layer {layer}]")
        ixt, iyt = paper.estimate(Tm)
        ixt_med, iyt_med = median.estimate(Tm)
        out[layer] = {
            "hsic_ixt": ixt,
            "hsic_iyt": iyt,
            "hsic_ixt_median": ixt_med,
            "hsic_iyt_median": iyt_med,
            "cka_xt": linear_cka(Xm, Tm),
            "cka_yt": linear_cka(Y, Tm),
        }
    if n_bootstrap:
        se = subsample_standard_errors(
            Xm, T_by_layer, y, n_resamples=n_bootstrap, seed=seed, sigma=sigma, lambda_factor=lambda_factor
        )
        for layer, values in out.items():
            for name in ("ixt", "iyt"):
                value, error = values[f"hsic_{name}"], se[layer][name]
                values[f"hsic_{name}_se"] = error
                values[f"hsic_{name}_ci_low"] = max(0.0, value - CI_Z * error)
                values[f"hsic_{name}_ci_high"] = value + CI_Z * error
    return out


def half_samples(y: np.ndarray, n_resamples: int, seed: int) -> list[np.ndarray]:
    """``n_resamples`` seeded class-stratified subsamples of ``len(y) // 2`` rows, without replacement."""
    m = np.asarray(y).shape[0]
    size = m // 2
    if size < MIN_ROWS:
        raise TrustTraceError(f"mi: {m} rows are too few for half-samples (need {2 * MIN_ROWS}); set mi.n_bootstrap: 0")
    return [stratified_sample(y, size, seed=[int(seed), k]) for k in range(int(n_resamples))]


def subsample_standard_errors(
    X: np.ndarray,
    T_by_layer: Mapping[int, np.ndarray],
    y: np.ndarray,
    *,
    n_resamples: int = DEFAULT_N_BOOTSTRAP,
    seed: int = 0,
    sigma: float = DEFAULT_SIGMA,
    lambda_factor: float = DEFAULT_LAMBDA_FACTOR,
) -> dict[int, dict[str, float]]:
    """Per layer ``{"ixt": SE, "iyt": SE}`` of the paper's nHSIC from half-sampling (delete-d jackknife).

    Each of ``n_resamples`` seeded stratified half-samples (``half_samples``; the same rows for every layer)
    gets its own estimate; with b = m // 2 rows out of m, ``SE^2 = b / (m - b) * Var(half-sample estimates)``
    (Shao & Wu 1989; the factor is 1 for b = m/2). Half-samples rather than a with-replacement bootstrap: a
    duplicated row makes two identical kernel rows, which the ridge in ``(S + lambda I)^{-1}`` treats
    differently from two close rows; and an (m/2)-row estimate costs ~1/8 of an m-row one (Cholesky, m^3).
    """
    if int(n_resamples) < 2:
        raise TrustTraceError(f"mi: n_bootstrap must be 0 (off) or >= 2 half-samples, got {n_resamples}")
    Xm = _as_matrix(X, "X")
    labels = np.asarray(y)
    m = Xm.shape[0]
    estimates: dict[int, list[tuple[float, float]]] = {layer: [] for layer in T_by_layer}
    for rows in half_samples(labels, n_resamples, seed):
        hsic = NormalizedHSIC(Xm[rows], labels[rows], sigma=sigma, lambda_factor=lambda_factor)
        for layer, T in T_by_layer.items():
            estimates[layer].append(hsic.estimate(np.asarray(T)[rows]))
    size = m // 2
    factor = size / (m - size)
    out = {}
    for layer, values in estimates.items():
        arr = np.asarray(values)
        sd = np.sqrt(factor * arr.var(axis=0, ddof=1))
        out[layer] = {"ixt": float(sd[0]), "iyt": float(sd[1])}
    return out


def _standardized_train_rows(shard: dict, rows: np.ndarray) -> np.ndarray:
    """The subsampled train rows of one layer's shard, standardised (train statistics, as for the probe)."""
    from trusttrace.probe import standardize
    from trusttrace.shards import split_arrays

    X_train = split_arrays(shard, "train")[0][rows]
    return standardize(X_train, X_train[:1])[0]


def cell_metrics(shards_dir, settings: Mapping, reference_dir=None) -> dict[int, dict]:
    """Every layer's MI metrics (``mi_metrics``) of one (checkpoint, dimension) activation directory.

    ``settings``: the config's ``mi`` section (max_samples, input_layer, sigma, lambda_factor,
    median_lambda_factor, seed, n_bootstrap). Rows: the train split, a seeded class-stratified subsample of at
    most ``max_samples``; every representation is standardised on those rows. X is the ``input_layer`` of
    ``reference_dir`` when given (``mi.input_reference: first_checkpoint``: X fixed across checkpoints; its
    train rows must be the same row_ids in the same order), else of ``shards_dir``. A layer whose activations are
    constant gets ``{"degenerate": reason}``; a constant X is a TrustTraceError (nothing to compare against).
    """
    from trusttrace.errors import DegenerateCellError
    from trusttrace.shards import available_layers, read_shard, split_arrays

    reference = settings.get("input_reference", "same_checkpoint")
    if reference not in INPUT_REFERENCES:
        raise TrustTraceError(f"mi.input_reference must be one of {INPUT_REFERENCES}, got {reference!r}")
    if (reference == "first_checkpoint") != (reference_dir is not None):
        raise TrustTraceError(
            f"mi.input_reference {reference}: the first checkpoint's activation directory must be given "
            "exactly when the reference is first_checkpoint"
        )
    input_layer = int(settings["input_layer"])
    source = reference_dir if reference_dir is not None else shards_dir
    input_shard = read_shard(source, input_layer)
    labels_shard = read_shard(shards_dir, input_layer) if reference_dir is not None else input_shard
    y = split_arrays(labels_shard, "train")[1]
    if reference_dir is not None:
        here = labels_shard["row_id"][labels_shard["split"] == "train"]
        there = input_shard["row_id"][input_shard["split"] == "train"]
        if here.shape != there.shape or not np.array_equal(here, there):
            raise TrustTraceError(
                f"mi.input_reference first_checkpoint: train row_ids of {reference_dir} and {shards_dir} differ "
                f"({there.shape[0]} vs {here.shape[0]} rows); re-extract both from the same data split"
            )
    rows = stratified_sample(y, settings["max_samples"], settings["seed"])
    try:
        X = _standardized_train_rows(input_shard, rows)
    except DegenerateCellError as error:
        raise TrustTraceError(
            f"mi.input_layer {input_layer} is constant in {source} ({error}); choose another"
        ) from None
    representations, degenerate = {}, {}
    layers = available_layers(shards_dir)
    for layer in layers:
        shard = labels_shard if layer == input_layer else read_shard(shards_dir, layer)
        try:
            representations[layer] = _standardized_train_rows(shard, rows)
        except DegenerateCellError as error:
            logging.getLogger(__name__).warning("%s layer %s: %s", shards_dir, layer, error)
            degenerate[layer] = str(error)
    metrics = (
        mi_metrics(
            X,
            representations,
            y[rows],
            sigma=settings["sigma"],
            lambda_factor=settings["lambda_factor"],
            median_lambda_factor=settings.get("median_lambda_factor"),
            n_bootstrap=int(settings.get("n_bootstrap", 0)),
            seed=int(settings["seed"]),
        )
        if representations
        else {}
    )
    return {
        layer: {"m": len(rows), **(metrics[layer] if layer in metrics else {"degenerate": degenerate[layer]})}
        for layer in layers
    }
