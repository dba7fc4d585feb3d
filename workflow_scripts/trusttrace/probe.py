"""Linear probes for one cell (checkpoint x layer x dimension): accuracy, control task, mass-mean, V-information.

Inputs per cell are ``X_train`` (n_train, d), ``y_train`` (n_train,) in {0, 1}, ``X_test`` (n_test, d) and
``y_test`` (n_test,). Everything here is numpy + scikit-learn only (no torch), so per-cell jobs start fast.

* ``standardize`` scales features with the TRAIN split's mean and std (constant columns become 0).
* ``probe_metrics`` fits an L2 logistic-regression probe (lbfgs) on the train split and reports:
  ``validation_accuracy`` (the number layers are chosen on; never reported as a finding), test ``accuracy`` with a
  Wilson score interval (exact enough at every n and never [1, 1] at accuracy 1), the ``majority_baseline`` (the
  test split's majority-class rate: what a constant predictor scores), ``permuted_label_accuracy`` (a negative
  control: the same probe trained on train labels shuffled independently of the truth (``null_labels``: each true
  class gets the same share of 1s) and scored on the true test labels; it sits at chance by construction, so a
  value far from it flags a leak or a bug. It is *not* Hewitt & Liang's control task, which
  assigns random labels per word type), ``accuracy_above_permuted`` (``accuracy - permuted_label_accuracy``), a
  mass-mean probe (difference of class means; Marks & Tegmark 2023), and the predictive V-information
  ``H(Y) - CE`` in bits (Xu et al. 2020) estimated on the test split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sklearn.linear_model import LogisticRegression

from trusttrace.errors import DegenerateCellError, TrustTraceError

# scikit-learn is imported where the probe is fitted: the MI job reuses ``standardize`` without paying ~1.4 s for it.

__all__ = [
    "ProbeSettings",
    "standardize",
    "wilson_interval",
    "majority_baseline",
    "mass_mean_accuracy",
    "v_information_bits",
    "validate_probe_inputs",
    "probe_metrics",
    "null_labels",
    "probe_cell",
]

_PROB_CLIP = 1e-12


@dataclass(frozen=True)
class ProbeSettings:
    """Knobs of the per-cell probe; ``seed`` drives the probe and the label permutation."""

    C: float = 1.0
    max_iter: int = 1000
    ci_level: float = 0.95
    min_rows_per_class: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.C) and self.C > 0):
            raise TrustTraceError(f"probe setting C={self.C!r} must be a positive finite number")
        if int(self.max_iter) != self.max_iter or self.max_iter < 1:
            raise TrustTraceError(f"probe setting max_iter={self.max_iter!r} must be an integer >= 1")
        if not 0.0 < self.ci_level < 1.0:
            raise TrustTraceError(f"probe setting ci_level={self.ci_level!r} must lie strictly between 0 and 1")
        if int(self.min_rows_per_class) != self.min_rows_per_class or self.min_rows_per_class < 1:
            raise TrustTraceError(
                f"probe setting min_rows_per_class={self.min_rows_per_class!r} must be an integer >= 1"
            )
        if int(self.seed) != self.seed or self.seed < 0:
            raise TrustTraceError(f"probe setting seed={self.seed!r} must be an integer >= 0")


def _constant_columns(X_train: np.ndarray) -> np.ndarray:
    """(d,) bool: columns whose train values are all identical (exact test, immune to mean round-off)."""
    return np.asarray(X_train.max(axis=0) == X_train.min(axis=0))


def standardize(X_train: np.ndarray, X_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Z-score both splits with the train split's per-column mean and (population) std, as float64.

    Columns constant on the train split are centred on their exact value with scale 1, so they become exactly 0
    on train (and ``x - value`` on test).
    Raises ``TrustTraceError`` if every column is constant: there is nothing to probe.
    """
    X_train = np.asarray(X_train, dtype=np.float64)
    X_test = np.asarray(X_test, dtype=np.float64)
    if X_train.ndim != 2 or X_test.ndim != 2 or X_train.shape[1] != X_test.shape[1] or X_train.shape[0] == 0:
        raise TrustTraceError(
            f"standardize needs 2-D train/test arrays with the same columns and >= 1 train row, "
            f"got shapes {X_train.shape} and {X_test.shape}"
        )
    constant = _constant_columns(X_train)
    n_features = X_train.shape[1]
    if constant.all():
        raise DegenerateCellError(
            f"all {n_features} features are constant (zero variance over {X_train.shape[0]} train rows); "
            f"the activations carry no signal - check the extraction for this cell"
        )
    mean = X_train.mean(axis=0)
    mean[constant] = X_train[0, constant]  # the exact value, free of summation round-off
    scale = X_train.std(axis=0)
    scale[constant] = 1.0
    scale[scale == 0.0] = 1.0  # defensive; constant columns are already covered
    Xs_train = (X_train - mean) / scale
    Xs_test = (X_test - mean) / scale
    return Xs_train, Xs_test


def wilson_interval(n_correct: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``n_correct / n`` at confidence ``level``.

    Unlike the percentile bootstrap (which collapses to [1, 1] at accuracy 1 and undercovers near 0 and 1), it
    keeps a width of about z^2 / n at the edges: 80 of 80 correct gives [0.954, 1.0] at 95 %.
    """
    from statistics import NormalDist

    if int(n) != n or n < 1:
        raise TrustTraceError(f"wilson_interval needs n >= 1 trials, got {n!r}")
    if int(n_correct) != n_correct or not 0 <= n_correct <= n:
        raise TrustTraceError(f"wilson_interval needs 0 <= n_correct <= n, got {n_correct!r} of {n}")
    if not 0.0 < level < 1.0:
        raise TrustTraceError(f"wilson_interval level={level!r} must lie strictly between 0 and 1")
    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    p = n_correct / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * np.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denominator
    # Clip float round-off: at p = 0 or 1 one bound is exactly 0 or 1 mathematically.
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def null_labels(y: np.ndarray, seed: int) -> np.ndarray:
    """(n,) 0/1 labels with the class balance of ``y`` but independent of it: within each true class the same share
    of rows gets label 1, at random (seeded).

    A plain permutation of ``y`` keeps a chance correlation with it (about 1/sqrt(n)); on a dimension whose classes
    are far apart, a probe trained on such labels follows the true direction and scores above chance on every
    layer at once (one permutation serves the whole grid). Balanced within each class, the labels carry no
    information about the truth, so the probe trained on them must sit at the baseline.
    """
    y = np.asarray(y).astype(np.int64)
    rng = np.random.default_rng((int(seed), 1))
    share = y.mean()
    labels = np.zeros_like(y)
    for value in (0, 1):
        rows = np.flatnonzero(y == value)
        ones = int(round(share * len(rows)))
        labels[rng.permutation(rows)[:ones]] = 1
    return labels


def majority_baseline(y: np.ndarray) -> float:
    """Accuracy of the best constant predictor on ``y`` ((n,) 0/1): the majority-class rate."""
    y = np.asarray(y)
    if y.size == 0:
        raise TrustTraceError("majority_baseline needs at least one label")
    rate = float(np.mean(y == 1))
    return max(rate, 1.0 - rate)


def mass_mean_accuracy(Xs_train: np.ndarray, y_train: np.ndarray, Xs_test: np.ndarray, y_test: np.ndarray) -> float:
    """Test accuracy of the mass-mean probe on (already standardised) features.

    direction = mean(Xs_train[y == 1]) - mean(Xs_train[y == 0]); a row is predicted 1 when its projection lies
    above the midpoint of the two projected train class means. If the class means coincide (zero direction) every
    row gets the majority train class.
    """
    Xs_train = np.asarray(Xs_train, dtype=np.float64)
    Xs_test = np.asarray(Xs_test, dtype=np.float64)
    y_train = np.asarray(y_train).astype(np.int64)
    y_test = np.asarray(y_test).astype(np.int64)
    if not ((y_train == 0).any() and (y_train == 1).any()):
        raise TrustTraceError("mass-mean probe needs both classes (0 and 1) in the train split")
    mu1 = Xs_train[y_train == 1].mean(axis=0)
    mu0 = Xs_train[y_train == 0].mean(axis=0)
    direction = mu1 - mu0
    if not np.any(direction):
        majority = int(y_train.mean() >= 0.5)
        return float(np.mean(y_test == majority))
    threshold = 0.5 * (float(mu1 @ direction) + float(mu0 @ direction))
    pred = (Xs_test @ direction > threshold).astype(np.int64)
    return float(np.mean(pred == y_test))


def _mean_cross_entropy_bits(y: np.ndarray, p1: np.ndarray) -> float:
    p1 = np.clip(p1, _PROB_CLIP, 1.0 - _PROB_CLIP)
    nll = -(y * np.log2(p1) + (1 - y) * np.log2(1.0 - p1))
    return float(np.mean(nll))


def v_information_bits(y_train: np.ndarray, y_test: np.ndarray, p_test: np.ndarray) -> dict[str, float]:
    """Predictive V-information I_V(X -> Y) = H_V(Y) - H_V(Y | X) in bits, estimated on the test split.

    ``h_y_bits``: mean test cross-entropy of the constant predictor P(y=1) = mean(y_train) (the train label prior);
    ``probe_cross_entropy_bits``: mean test cross-entropy of the probe's ``p_test`` = P(y=1 | x), (n_test,).
    Probabilities are clipped to [1e-12, 1 - 1e-12]. The held-out estimate can be slightly negative when the probe
    does worse than the prior (no usable signal, or over-fitting); it is reported as is.
    """
    y_train = np.asarray(y_train).astype(np.float64)
    y_test = np.asarray(y_test).astype(np.float64)
    p_test = np.asarray(p_test, dtype=np.float64)
    if y_train.ndim != 1 or y_train.size == 0 or y_test.ndim != 1 or y_test.size == 0:
        raise TrustTraceError(
            f"V-information needs non-empty 1-D label arrays, got shapes {y_train.shape} and {y_test.shape}"
        )
    if p_test.shape != y_test.shape:
        raise TrustTraceError(f"V-information: p_test has shape {p_test.shape} but y_test has shape {y_test.shape}")
    if not np.isfinite(p_test).all() or (p_test < 0).any() or (p_test > 1).any():
        raise TrustTraceError("V-information: p_test must hold finite probabilities in [0, 1]")
    prior = np.full_like(y_test, y_train.mean())
    h_y = _mean_cross_entropy_bits(y_test, prior)
    ce = _mean_cross_entropy_bits(y_test, p_test)
    return {"v_information_bits": h_y - ce, "h_y_bits": h_y, "probe_cross_entropy_bits": ce}


def _check_labels(y: np.ndarray, split: str) -> None:
    if y.dtype == bool:
        return
    if not np.issubdtype(y.dtype, np.number):
        raise TrustTraceError(f"{split} labels must be numeric 0/1, got dtype {y.dtype}")
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        examples = sorted({repr(v.item()) for v in y[bad][:1000]})[:5]
        raise TrustTraceError(
            f"{split} labels must be 0 or 1: {int(bad.sum())} of {y.size} are not (e.g. {', '.join(examples)})"
        )


def validate_probe_inputs(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    min_rows_per_class: int,
) -> None:
    """Raise ``TrustTraceError`` (one line, with counts) unless the four arrays form a valid probe cell."""
    X_train, y_train = np.asarray(X_train), np.asarray(y_train)
    X_test, y_test = np.asarray(X_test), np.asarray(y_test)
    for name, X in (("X_train", X_train), ("X_test", X_test)):
        if X.ndim != 2:
            raise TrustTraceError(f"{name} must be 2-D (rows, features), got {X.ndim}-D shape {X.shape}")
        if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
            raise TrustTraceError(f"{name} must be numeric, got dtype {X.dtype}")
    for name, y in (("y_train", y_train), ("y_test", y_test)):
        if y.ndim != 1:
            raise TrustTraceError(f"{name} must be 1-D (rows,), got {y.ndim}-D shape {y.shape}")
    for split, X, y in (("train", X_train, y_train), ("test", X_test, y_test)):
        if X.shape[0] != y.shape[0]:
            raise TrustTraceError(
                f"{split} split has {X.shape[0]} feature rows but {y.shape[0]} labels; they must match"
            )
        if X.shape[0] == 0:
            raise TrustTraceError(f"{split} split has 0 rows")
    if X_train.shape[1] != X_test.shape[1]:
        raise TrustTraceError(f"train has {X_train.shape[1]} features but test has {X_test.shape[1]}; they must match")
    if X_train.shape[1] == 0:
        raise TrustTraceError("features have 0 columns")
    for split, X in (("train", X_train), ("test", X_test)):
        bad_rows = int((~np.isfinite(X)).any(axis=1).sum())
        if bad_rows:
            raise TrustTraceError(
                f"{split} features contain NaN/inf in {bad_rows} of {X.shape[0]} rows; fix or drop them upstream"
            )
    _check_labels(y_train, "train")
    _check_labels(y_test, "test")
    for split, y in (("train", y_train), ("test", y_test)):
        n1 = int(np.count_nonzero(y == 1))
        n0 = y.size - n1
        for cls, count in ((0, n0), (1, n1)):
            if count == 0:
                raise TrustTraceError(
                    f"class {cls} is missing from the {split} split ({n0} rows of class 0, {n1} of class 1)"
                )
    n1 = int(np.count_nonzero(y_train == 1))
    n0 = y_train.size - n1
    for cls, count in ((0, n0), (1, n1)):
        if count < min_rows_per_class:
            raise TrustTraceError(
                f"train split has only {count} rows of class {cls} (need >= min_rows_per_class="
                f"{min_rows_per_class}; {n0} rows of class 0, {n1} of class 1)"
            )


def _fit_probe(Xs_train: np.ndarray, y_train: np.ndarray, settings: ProbeSettings) -> LogisticRegression:
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(
        C=float(settings.C), solver="lbfgs", max_iter=int(settings.max_iter), random_state=int(settings.seed)
    )
    return clf.fit(Xs_train, y_train)


def _p_class1(clf: LogisticRegression, Xs: np.ndarray) -> np.ndarray:
    return clf.predict_proba(Xs)[:, list(clf.classes_).index(1)]


def probe_metrics(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    settings: ProbeSettings = ProbeSettings(),
    X_validation: np.ndarray | None = None,
    y_validation: np.ndarray | None = None,
) -> dict[str, float | int | None]:
    """All per-cell probe metrics as a JSON-serialisable dict of plain floats/ints (see module docstring).

    ``X_validation`` (n_val, d) / ``y_validation`` (n_val,): held-out train-side rows on which a layer is chosen;
    without them (or with 0 rows) ``validation_accuracy`` is None and callers must correct for the layer search
    some other way. Deterministic for fixed inputs and ``settings.seed``: the probe uses ``random_state=seed``, the
    null labels (``null_labels``) ``default_rng((seed, 1))``.
    """
    validate_probe_inputs(X_train, y_train, X_test, y_test, settings.min_rows_per_class)
    y_train = np.asarray(y_train).astype(np.int64)
    y_test = np.asarray(y_test).astype(np.int64)
    n_constant = int(_constant_columns(np.asarray(X_train)).sum())
    Xs_train, Xs_test = standardize(X_train, X_test)

    clf = _fit_probe(Xs_train, y_train, settings)
    p_test = _p_class1(clf, Xs_test)
    correct = clf.predict(Xs_test) == y_test
    accuracy = float(correct.mean())
    ci_low, ci_high = wilson_interval(int(correct.sum()), correct.size, settings.ci_level)

    validation_accuracy, n_validation = None, 0
    if X_validation is not None and len(X_validation):
        y_validation = np.asarray(y_validation).astype(np.int64)
        _, Xs_validation = standardize(X_train, X_validation)
        validation_accuracy = float(np.mean(clf.predict(Xs_validation) == y_validation))
        n_validation = int(len(y_validation))

    permuted = _fit_probe(Xs_train, null_labels(y_train, settings.seed), settings)
    permuted_label_accuracy = float(np.mean(permuted.predict(Xs_test) == y_test))

    vinfo = v_information_bits(y_train, y_test, p_test)
    return {
        "accuracy": accuracy,
        "accuracy_ci_low": ci_low,
        "accuracy_ci_high": ci_high,
        "ci_method": "wilson",
        "ci_level": float(settings.ci_level),
        "majority_baseline": majority_baseline(y_test),
        "validation_accuracy": validation_accuracy,
        "permuted_label_accuracy": permuted_label_accuracy,
        "accuracy_above_permuted": accuracy - permuted_label_accuracy,
        "mass_mean_accuracy": mass_mean_accuracy(Xs_train, y_train, Xs_test, y_test),
        "v_information_bits": float(vinfo["v_information_bits"]),
        "h_y_bits": float(vinfo["h_y_bits"]),
        "probe_cross_entropy_bits": float(vinfo["probe_cross_entropy_bits"]),
        "n_train": int(Xs_train.shape[0]),
        "n_validation": n_validation,
        "n_test": int(Xs_test.shape[0]),
        "n_features": int(Xs_train.shape[1]),
        "n_constant_features": n_constant,
    }


def probe_cell(shards_dir, layer: int, settings: ProbeSettings = ProbeSettings()) -> dict[str, float | int | None]:
    """``probe_metrics`` of one layer's shard: fit on its train rows, choose on validation, report on test."""
    from trusttrace.shards import read_shard, split_arrays

    shard = read_shard(shards_dir, layer)
    X_train, y_train = split_arrays(shard, "train")
    X_validation, y_validation = split_arrays(shard, "validation")
    X_test, y_test = split_arrays(shard, "test")
    return probe_metrics(X_train, y_train, X_test, y_test, settings, X_validation, y_validation)
