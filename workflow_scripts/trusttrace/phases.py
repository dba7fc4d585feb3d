"""Fitting and compression phases of the information plane (Qian et al. 2024), per (model, dimension, layer).

The paper's picture: during **fitting** I(X;T) and I(Y;T) rise together; during **compression**, afterwards,
I(X;T) falls while I(Y;T) holds (or keeps rising). On one curve over checkpoints (in step order; checkpoints
without a step are placed by their index) ``detect_phases`` decides:

* ``fitting``: I(X;T) rises significantly from the start of fitting (its lowest level at or before the peak) to
  its peak (the highest level);
* ``compression``: fitting happened, I(X;T) then falls significantly from the peak to the end of compression (its
  lowest level after the peak), AND I(Y;T) does not fall significantly over the same span.

Levels are read from the curve's running median of 3 (end points kept): a single checkpoint that jumps up and
straight back (a spike) is no peak, so compression needs the fall to last at least two checkpoints. Reported
changes (``ixt_rise``, ``ixt_drop``, ``iyt_change_*``) are raw values at the chosen checkpoints.

Noise model (``NOISE_METHOD``). A change between checkpoints i < j of a curve is significant when it exceeds
``z * sqrt(se_i^2 + se_j^2 + tau^2 (j - i))`` (and a floor of ``MIN_RELATIVE_CHANGE`` of the peak, so that a
noiseless curve does not call float jitter a phase):

* ``se_i``: the estimator's own sampling noise at checkpoint i (the nHSIC half-sampling SE of the MI cell, read
  back from its CI; 0 when the cell has no CI);
* ``tau^2 (j - i)``: the curve's between-checkpoint noise. ``tau`` is a robust SD of the curve's second differences
  (1.4826 x median |second difference|, which cancels any locally linear trend) divided by sqrt(2), less the
  sampling part ``3 mean(se^2)``. Why that is valid under autocorrelation: for AR(1) noise with coefficient rho
  the variance of a second difference is ``(3 - rho)`` times that of a first difference (3 for white noise, 2 for
  a random walk), so dividing by 2 never underestimates the first-difference variance ``v1``; and
  ``Var(x_j - x_i) <= v1 (j - i)`` for any AR(1) with rho >= 0 (equality for a random walk), so the lag-scaled
  bound holds for white noise, AR(1) noise and random walks alike (conservative for the first two).

``z`` (``Z_CHANGE``) is calibrated by simulation (``null_curves`` / ``false_positive_rate``; tests/test_phases.py)
so that compression is called on at most 5 % of null curves -- white noise, AR(1) with rho = 0.7 and random
walks, 8-12 checkpoints, independent I(X;T) and I(Y;T) curves, with and without sampling SEs. The null is "no
trend in expectation": a random walk does rise and fall, and the test must not read that as fitting + compression.
``z`` also absorbs the selection of the peak, start and end as the extremes of the curve.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from trusttrace.aggregate import _clean, table_schema, to_arrow
from trusttrace.errors import TrustTraceError

# Normal quantile of the MI CIs (mi.CI_Z): the SE of a cell is (ci_high - value) / CI_Z.
CI_Z = 1.959963984540054
# Threshold for a rise (fitting) or a fall (compression) of I(X;T), in SDs of the change (calibrated, see module).
Z_CHANGE = 2.25
# I(Y;T) "falls significantly" above this many SDs (one-sided 5 %, uncorrected: a lower bar only makes
# compression rarer, so it cannot raise the false-positive rate).
Z_HOLD = 1.645
MIN_RELATIVE_CHANGE = 0.01
MIN_CHECKPOINTS = 4  # fewer: two second differences, too few to tell noise from trend
SECOND_TO_FIRST_DIFFERENCE_VARIANCE = 2.0  # (3 - rho) for AR(1) noise, its minimum (random walk): conservative
NOISE_METHOD = (
    "change between checkpoints i<j significant when > z*sqrt(se_i^2 + se_j^2 + tau^2*(j-i)), z = {z}; "
    "se = nHSIC half-sampling SE of the cell (0 without CI); tau^2 = (1.4826*median|second differences|)^2/2 "
    "- 3*mean(se^2), a bound on the per-checkpoint variance valid for white, AR(1) (rho >= 0) and random-walk "
    "noise; levels from the running median of 3 (spikes are not phases); I(Y;T) falls when its drop > "
    "{z_hold}*sqrt(...); calibrated: compression on <= 5% of null curves"
)

PHASES_SCHEMA = table_schema(
    *[
        "model",
        "dimension",
        "layer",
        "metric",
        ("input_reference", pa.string()),
        ("n_checkpoints", pa.int64()),
        ("fitting", pa.bool_()),
        ("compression", pa.bool_()),
        ("fitting_start_checkpoint", pa.string()),
        ("fitting_start_step", pa.int64()),
        ("fitting_end_checkpoint", pa.string()),
        ("fitting_end_step", pa.int64()),
        ("compression_end_checkpoint", pa.string()),
        ("compression_end_step", pa.int64()),
        ("peak_checkpoint", pa.string()),
        ("peak_step", pa.int64()),
        ("peak_value", pa.float64()),
        ("final_value", pa.float64()),
        ("ixt_rise", pa.float64()),
        ("ixt_drop", pa.float64()),
        ("iyt_change_during_fitting", pa.float64()),
        ("iyt_change_during_compression", pa.float64()),
        ("drop", pa.float64()),
        ("relative_drop", pa.float64()),
        ("noise_scale", pa.float64()),
        ("iyt_noise_scale", pa.float64()),
        ("fitting_threshold", pa.float64()),
        ("compression_threshold", pa.float64()),
        ("iyt_fall_threshold", pa.float64()),
        ("z", pa.float64()),
        ("z_hold", pa.float64()),
        ("noise_method", pa.string()),
        ("accuracy_max", pa.float64()),
        ("accuracy_plateau_checkpoint", pa.string()),
        ("accuracy_plateau_step", pa.int64()),
    ]
)


# ---------------------------------------------------------------------------------------------------------------
# One curve


def running_median3(values: np.ndarray) -> np.ndarray:
    """Running median of 3 with the end points kept: a one-checkpoint spike is removed, monotone runs kept."""
    values = np.asarray(values, dtype=float)
    if len(values) < 3:
        return values.copy()
    out = values.copy()
    out[1:-1] = np.median(np.stack([values[:-2], values[1:-1], values[2:]]), axis=0)
    return out


def step_noise(values: Sequence[float], se: Sequence[float] | None = None) -> float:
    """``tau``: SD of the curve's between-checkpoint noise per checkpoint interval (see the module docstring).

    NaN with fewer than ``MIN_CHECKPOINTS`` points.
    """
    values = np.asarray(values, dtype=float)
    if len(values) < MIN_CHECKPOINTS:
        return math.nan
    second = np.diff(values, n=2)
    robust_var = (1.4826 * float(np.median(np.abs(second)))) ** 2
    sampling = 0.0 if se is None else 3.0 * float(np.mean(np.square(se)))
    return math.sqrt(max(0.0, robust_var / SECOND_TO_FIRST_DIFFERENCE_VARIANCE - sampling))


def _extreme(smooth: np.ndarray, raw: np.ndarray, lo: int, hi: int, largest: bool) -> int:
    """Position in [lo, hi) of the largest (smallest) smoothed level; among tied levels the largest (smallest) raw
    value, then the earliest. A sharp peak leaves a plateau of two equal medians; the raw value picks its top."""
    sign = 1.0 if largest else -1.0
    level = sign * smooth[lo:hi]
    tied = np.flatnonzero(level == level.max())
    return lo + int(tied[np.argmax(sign * raw[lo:hi][tied])])


def _change_sd(se: np.ndarray, tau: float, i: int, j: int) -> float:
    return math.sqrt(se[i] ** 2 + se[j] ** 2 + tau * tau * abs(j - i))


def _as_curve(values, n: int, name: str) -> np.ndarray:
    if values is None:
        return np.full(n, np.nan)
    arr = np.asarray(values, dtype=float)
    if arr.shape != (n,):
        raise TrustTraceError(f"detect_phases: {name} has shape {arr.shape}, expected ({n},) like the steps")
    return arr


def detect_phases(
    steps: Sequence[float],
    ixt: Sequence[float],
    iyt: Sequence[float] | None = None,
    ixt_se: Sequence[float] | None = None,
    iyt_se: Sequence[float] | None = None,
    *,
    z: float = Z_CHANGE,
    z_hold: float = Z_HOLD,
    min_relative_change: float = MIN_RELATIVE_CHANGE,
) -> dict:
    """Fitting and compression of one (I(X;T), I(Y;T)) curve over checkpoints (see the module docstring).

    ``steps``: the checkpoints' x positions (steps, or checkpoint indices where steps are missing); only their
    order is used, the noise is per checkpoint interval. Checkpoints whose I(X;T) is not finite are dropped; a
    non-finite SE counts as 0. Positions in the result (``*_index``) are positions in the inputs.
    """
    steps = np.asarray(steps, dtype=float)
    n_in = steps.shape[0] if steps.ndim == 1 else -1
    x_all = _as_curve(ixt, n_in, "ixt")
    y_all, xse_all, yse_all = (_as_curve(v, n_in, k) for v, k in ((iyt, "iyt"), (ixt_se, "ixt_se"), (iyt_se, "iyt_se")))
    finite = np.flatnonzero(np.isfinite(x_all))
    if len(finite) == 0:
        raise TrustTraceError("detect_phases: I(X;T) has no finite values")
    index = finite[np.argsort(steps[finite], kind="stable")]
    x, y = x_all[index], y_all[index]
    xse, yse = np.nan_to_num(xse_all[index]), np.nan_to_num(yse_all[index])
    n = len(x)
    xs = running_median3(x)
    p = _extreme(xs, x, 0, n, largest=True)
    s = _extreme(xs, x, 0, p + 1, largest=False)
    c = _extreme(xs, x, p, n, largest=False)
    tau = step_noise(x, xse)
    y_ok = bool(np.isfinite(y).all())
    tau_y = step_noise(y, yse) if y_ok else math.nan
    ys = running_median3(y) if y_ok else y
    floor = min_relative_change * abs(x[p])
    testable = math.isfinite(tau)
    fitting_threshold = max(z * _change_sd(xse, tau, s, p), floor) if testable else math.nan
    compression_threshold = max(z * _change_sd(xse, tau, p, c), floor) if testable else math.nan
    fitting = bool(testable and p > s and xs[p] - xs[s] > fitting_threshold)
    falls = bool(testable and c > p and xs[p] - xs[c] > compression_threshold)
    if y_ok and math.isfinite(tau_y):
        iyt_fall_threshold = max(z_hold * _change_sd(yse, tau_y, p, c), min_relative_change * abs(y[p]))
        iyt_holds = bool(ys[p] - ys[c] <= iyt_fall_threshold)
    else:  # without I(Y;T) (or too short a curve) "I(Y;T) holds" cannot be established
        iyt_fall_threshold, iyt_holds = math.nan, False
    drop = float(x[p] - x[c])
    return {
        "n_checkpoints": n,
        "fitting": fitting,
        "compression": bool(fitting and falls and iyt_holds),
        "fitting_start_index": int(index[s]),
        "peak_index": int(index[p]),
        "compression_end_index": int(index[c]),
        "peak_value": float(x[p]),
        "final_value": float(x[-1]),
        "ixt_rise": float(x[p] - x[s]),
        "ixt_drop": drop,
        "iyt_change_during_fitting": float(y[p] - y[s]) if y_ok else math.nan,
        "iyt_change_during_compression": float(y[c] - y[p]) if y_ok else math.nan,
        "drop": drop,
        "relative_drop": drop / x[p] if x[p] != 0 else math.nan,
        "noise_scale": tau,
        "iyt_noise_scale": tau_y,
        "fitting_threshold": fitting_threshold,
        "compression_threshold": compression_threshold,
        "iyt_fall_threshold": iyt_fall_threshold,
        "z": float(z),
        "z_hold": float(z_hold),
    }


# ---------------------------------------------------------------------------------------------------------------
# Calibration on null curves


NULL_KINDS = ("white", "ar1", "random_walk")


def null_curves(kind: str, n_curves: int, n_checkpoints: int, rng: np.random.Generator, rho: float = 0.7) -> np.ndarray:
    """(n_curves, n_checkpoints) noise curves with no trend in expectation: white (SD 1), stationary AR(1) with
    coefficient ``rho`` (SD 1), or a random walk (steps of SD 1, started at 0)."""
    e = rng.standard_normal((n_curves, n_checkpoints))
    if kind == "white":
        return e
    if kind == "random_walk":
        return np.cumsum(e, axis=1)
    if kind == "ar1":
        out = np.empty_like(e)
        out[:, 0] = e[:, 0]
        innovation = math.sqrt(1.0 - rho * rho)
        for t in range(1, n_checkpoints):
            out[:, t] = rho * out[:, t - 1] + innovation * e[:, t]
        return out
    raise TrustTraceError(f"null_curves: unknown kind {kind!r} (one of {NULL_KINDS})")


def false_positive_rate(
    kind: str,
    n_checkpoints: int,
    *,
    n_curves: int = 2000,
    seed: int = 0,
    sampling_se: float = 0.0,
    z: float = Z_CHANGE,
) -> dict[str, float]:
    """Share of null curves called ``fitting`` and ``compression`` (I(X;T) and I(Y;T) independent null curves of
    ``kind`` on log-spaced steps, plus white sampling noise of SD ``sampling_se`` reported as each point's SE)."""
    rng = np.random.default_rng(seed)
    steps = np.unique(np.round(np.geomspace(1, 10_000, n_checkpoints)))
    steps = np.r_[0.0, steps[: n_checkpoints - 1]]
    shape = (n_curves, n_checkpoints)
    x = 5.0 + null_curves(kind, n_curves, n_checkpoints, rng) + sampling_se * rng.standard_normal(shape)
    y = 5.0 + null_curves(kind, n_curves, n_checkpoints, rng) + sampling_se * rng.standard_normal(shape)
    se = np.full(n_checkpoints, sampling_se) if sampling_se > 0 else None
    calls = [detect_phases(steps, x[i], y[i], se, se, z=z) for i in range(n_curves)]
    return {
        "fitting": float(np.mean([c["fitting"] for c in calls])),
        "compression": float(np.mean([c["compression"] for c in calls])),
    }


# ---------------------------------------------------------------------------------------------------------------
# The table


def first_within_of_max(steps: Sequence[float], values: Sequence[float], tolerance: float = 0.01) -> tuple[int, float]:
    """(position in the inputs of the first checkpoint, in step order, whose value is >= max - tolerance; max)."""
    steps = np.asarray(steps, dtype=float)
    values = np.asarray(values, dtype=float)
    if steps.shape != values.shape or steps.ndim != 1:
        raise TrustTraceError(
            f"first_within_of_max: steps and values must be 1-d of equal length ({steps.shape}, {values.shape})"
        )
    finite = np.flatnonzero(np.isfinite(values))
    if len(finite) == 0:
        raise TrustTraceError("first_within_of_max: no finite values")
    index = finite[np.argsort(steps[finite], kind="stable")]
    best = float(values[index].max())
    return int(index[np.flatnonzero(values[index] >= best - tolerance - 1e-9)[0]]), best


def x_positions(frame: pd.DataFrame) -> pd.Series:
    """The checkpoint axis: the step where every row has one, else the checkpoint index."""
    if frame["step"].notna().all():
        return frame["step"].astype(float)
    return frame["checkpoint_index"].astype(float)


def _standard_errors(frame: pd.DataFrame) -> np.ndarray:
    """Per row: (ci_high - value) / CI_Z (the MI CIs are value +- CI_Z SE, the low end clipped at 0); NaN -> 0."""
    if "ci_high" not in frame:
        return np.zeros(len(frame))
    se = (frame["ci_high"].astype(float) - frame["value"].astype(float)).to_numpy() / CI_Z
    return np.nan_to_num(np.clip(se, 0.0, None))


def phases_table(
    metrics: pd.DataFrame,
    *,
    ixt_metric: str = "hsic_ixt",
    iyt_metric: str = "hsic_iyt",
    input_reference: str = "same_checkpoint",
    z: float = Z_CHANGE,
    z_hold: float = Z_HOLD,
    tolerance: float = 0.01,
) -> pd.DataFrame:
    """Per (model, dimension, layer): fitting and compression of (``ixt_metric``, ``iyt_metric``) over checkpoints
    (``detect_phases``; SEs from the tidy table's CIs) and the first checkpoint at which probe accuracy comes
    within ``tolerance`` of its maximum. ``input_reference``: which X the I(X;T) curve used (mi.input_reference)."""
    rows = []
    keys = ["model", "dimension", "layer"]
    curves = metrics[metrics["metric"].isin([ixt_metric, iyt_metric, "accuracy"])]
    noise_method = NOISE_METHOD.format(z=z, z_hold=z_hold)
    for (model, dimension, layer), group in curves.groupby(keys, sort=True):
        row = {
            "model": model,
            "dimension": dimension,
            "layer": int(layer),
            "metric": ixt_metric,
            "input_reference": input_reference,
            "noise_method": noise_method,
        }
        ixt = group[group["metric"] == ixt_metric].sort_values("checkpoint_index")
        if len(ixt):
            iyt = group[group["metric"] == iyt_metric].set_index("checkpoint")
            iyt = iyt.reindex(ixt["checkpoint"])  # aligned to I(X;T)'s checkpoints; NaN where missing
            phase = detect_phases(
                x_positions(ixt).to_numpy(),
                ixt["value"].to_numpy(),
                iyt["value"].to_numpy(dtype=float),
                _standard_errors(ixt),
                _standard_errors(iyt.reset_index()),
                z=z,
                z_hold=z_hold,
            )
            for name, key in (
                ("fitting_start", "fitting_start_index"),
                ("fitting_end", "peak_index"),
                ("compression_end", "compression_end_index"),
                ("peak", "peak_index"),
            ):
                chosen = ixt.iloc[phase[key]]
                row[f"{name}_checkpoint"] = chosen["checkpoint"]
                row[f"{name}_step"] = _clean(chosen["step"])
            if not phase["fitting"]:  # phase bounds only for a phase that happened; the peak is always reported
                row["fitting_start_checkpoint"] = row["fitting_start_step"] = None
                row["fitting_end_checkpoint"] = row["fitting_end_step"] = None
            if not phase["compression"]:
                row["compression_end_checkpoint"] = row["compression_end_step"] = None
            for key in ("fitting_start_index", "peak_index", "compression_end_index"):
                phase.pop(key)
            row.update(phase)
        accuracy = group[group["metric"] == "accuracy"].sort_values("checkpoint_index")
        if len(accuracy):
            index, best = first_within_of_max(x_positions(accuracy).to_numpy(), accuracy["value"].to_numpy(), tolerance)
            plateau = accuracy.iloc[index]
            row.update(
                accuracy_max=best,
                accuracy_plateau_checkpoint=plateau["checkpoint"],
                accuracy_plateau_step=_clean(plateau["step"]),
            )
        rows.append(row)
    frame = pd.DataFrame(rows, columns=[f.name for f in PHASES_SCHEMA])
    return to_arrow(frame, PHASES_SCHEMA).to_pandas()
