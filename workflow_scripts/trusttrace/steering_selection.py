"""Which steering setting to report, chosen without looking at the rows it is reported on. No torch.

Input: the tidy metrics table (``trusttrace.aggregate``; steering rows written by ``tidy_rows``). Per cell
(source checkpoint x layer) and alpha > 0 it holds, for each measure ``m`` (``likelihood_margin``,
``prompted_margin``, ``prompted_accuracy``) and each evaluation split (suffix ``_validation`` or none for test):

* ``steering_effect_{m}``: the antisymmetric effect (m(+a) - m(-a)) / 2 with its bootstrap CI;
* ``steering_random_{m}`` / ``steering_random_sd_{m}``: mean / SD of the same effect over random directions of the
  vector's norm;
* ``steering_effect_vs_random_{m}``: effect minus the random mean, with a paired bootstrap CI;
* ``steering_fluency_cost``: mean log-likelihood of all evaluated statements at alpha 0 minus at +a (nats/token).

Selection: the measure is the prompted margin where the target was scored with prompts (chat targets), else the
likelihood margin. Among alpha > 0 only (toward ``trustworthy_label``; steering away is never a reported
improvement), the (source checkpoint, layer, alpha) with the largest *validation* effect-minus-random wins (ties:
smaller alpha, earlier checkpoint, lower layer); its *test* numbers are reported.
"""

from __future__ import annotations

import math

import pandas as pd

MEASURE_PREFERENCE = ("prompted_margin", "likelihood_margin")
VALIDATION = "_validation"
SELECTION_SPLIT_METRIC = "steering_selection_on_test_half"  # 1: validation rows were half of the test rows
KEYS = ("model", "checkpoint", "layer", "alpha")

RESULT_KEYS = (
    "steering_best_checkpoint",
    "steering_best_layer",
    "steering_best_alpha",
    "steering_effect",
    "steering_effect_ci_low",
    "steering_effect_ci_high",
    "steering_random_control",
    "steering_fluency_cost",
)


def _value(rows: pd.DataFrame, metric: str, column: str = "value") -> float:
    row = rows[rows["metric"] == metric]
    if row.empty or pd.isna(row[column].iloc[0]):
        return math.nan
    return float(row[column].iloc[0])


def select_steering(metrics: pd.DataFrame, model: str, dimension: str) -> dict | None:
    """The reported steering setting of one model x dimension (see the module docstring); None when the table has
    no steering effects with alpha > 0 for it.

    Keys: ``steering_best_checkpoint``, ``steering_best_step``, ``steering_best_layer``, ``steering_best_alpha``,
    ``steering_effect`` (+ ``_ci_low``, ``_ci_high``; test rows), ``steering_random_control`` (mean random effect,
    test) and ``steering_random_control_sd``, ``steering_effect_vs_random`` (+ CI), ``steering_fluency_cost``,
    ``steering_validation_effect_vs_random`` (the selection score), ``steering_metric``, ``steering_selection_split``
    (``validation`` or ``test_half``), ``steering_n_candidates``, ``steering_improves`` (the test CI of effect minus
    random control lies above 0).
    """
    rows = metrics[
        (metrics["model"] == model) & (metrics["dimension"] == dimension) & (metrics["source"] == "steering")
    ]
    measure = next(
        (m for m in MEASURE_PREFERENCE if (rows["metric"] == f"steering_effect_vs_random_{m}{VALIDATION}").any()),
        None,
    )
    if measure is None:
        return None
    score = rows[(rows["metric"] == f"steering_effect_vs_random_{measure}{VALIDATION}") & (rows["alpha"] > 0)]
    score = score[score["value"].notna()]
    if score.empty:
        return None
    score = score.sort_values(["value", "alpha", "checkpoint_index", "layer"], ascending=[False, True, True, True])
    best = score.iloc[0]
    cell = rows[(rows["checkpoint"] == best["checkpoint"]) & (rows["layer"] == best["layer"])]
    at_alpha = cell[cell["alpha"] == best["alpha"]]
    effect = f"steering_effect_{measure}"
    relative = f"steering_effect_vs_random_{measure}"
    on_half = _value(cell, SELECTION_SPLIT_METRIC)
    result = {
        "steering_best_checkpoint": str(best["checkpoint"]),
        "steering_best_step": None if pd.isna(best["step"]) else int(best["step"]),
        "steering_best_layer": int(best["layer"]),
        "steering_best_alpha": float(best["alpha"]),
        "steering_effect": _value(at_alpha, effect),
        "steering_effect_ci_low": _value(at_alpha, effect, "ci_low"),
        "steering_effect_ci_high": _value(at_alpha, effect, "ci_high"),
        "steering_random_control": _value(at_alpha, f"steering_random_{measure}"),
        "steering_random_control_sd": _value(at_alpha, f"steering_random_sd_{measure}"),
        "steering_effect_vs_random": _value(at_alpha, relative),
        "steering_effect_vs_random_ci_low": _value(at_alpha, relative, "ci_low"),
        "steering_effect_vs_random_ci_high": _value(at_alpha, relative, "ci_high"),
        "steering_fluency_cost": _value(at_alpha, "steering_fluency_cost"),
        "steering_validation_effect_vs_random": float(best["value"]),
        "steering_metric": measure,
        "steering_selection_split": "test_half" if on_half == 1.0 else "validation",
        "steering_n_candidates": len(score),
    }
    low = result["steering_effect_vs_random_ci_low"]
    result["steering_improves"] = bool(not math.isnan(low) and low > 0)
    return result
