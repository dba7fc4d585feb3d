"""results/summary.md: the key findings per model x dimension in a few lines, readable in a terminal.

Pure functions over the tidy tables of ``trusttrace.aggregate``; no snakemake object, no plotting.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

CHANCE = 0.5


def checkpoint_label(checkpoint: str, step) -> str:
    """``step 64`` when the checkpoint is named after its step, else ``main (step 143000)`` / ``main``."""
    if step is None or (isinstance(step, float) and math.isnan(step)) or step is pd.NA:
        return str(checkpoint)
    step = int(step)
    return f"step {step}" if str(checkpoint) == f"step{step}" else f"{checkpoint} (step {step})"


def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["checkpoint_index", "layer"], kind="stable")


def best_layer_per_checkpoint(metrics: pd.DataFrame, model: str, dimension: str) -> pd.DataFrame:
    """For each checkpoint (in order) the layer with the highest probe accuracy (lowest layer on ties)."""
    accuracy = metrics[(metrics["model"] == model) & (metrics["dimension"] == dimension) & (metrics["metric"] == "accuracy")]
    if accuracy.empty:
        return accuracy
    accuracy = _ordered(accuracy)
    best = accuracy.loc[accuracy.groupby("checkpoint_index", sort=True)["value"].idxmax()]
    return best.sort_values("checkpoint_index")


def earliest_separable(metrics: pd.DataFrame, model: str, dimension: str, chance: float = CHANCE) -> dict | None:
    """First checkpoint whose best layer's accuracy CI lower bound exceeds chance; None if none does."""
    best = best_layer_per_checkpoint(metrics, model, dimension)
    separable = best[best["ci_low"] > chance]
    if separable.empty:
        return None
    return separable.iloc[0].to_dict()


def best_steering(metrics: pd.DataFrame, model: str, dimension: str, metric: str = "steering_margin_change") -> dict | None:
    """The (source checkpoint, layer, alpha != 0) with the largest ``metric``; None without steering rows."""
    rows = metrics[
        (metrics["model"] == model)
        & (metrics["dimension"] == dimension)
        & (metrics["metric"] == metric)
        & metrics["alpha"].notna()
        & (metrics["alpha"] != 0)
    ]
    if rows.empty or rows["value"].isna().all():
        return None
    return _ordered(rows).loc[lambda f: f["value"] == f["value"].max()].iloc[0].to_dict()


def _format_ci(row: dict) -> str:
    text = f"{row['value']:.3f}"
    if row.get("ci_low") is not None and not pd.isna(row.get("ci_low")):
        text += f" [95% CI {row['ci_low']:.3f}, {row['ci_high']:.3f}]"
    return text


def _phase_lines(phases: pd.DataFrame) -> list[str]:
    mi = phases[phases["peak_value"].notna()]
    if mi.empty:
        return ["- I(X;T): no mutual-information cells"]
    peaks = mi["peak_step"].dropna()
    n = len(mi)
    if len(peaks):
        median = int(np.median(peaks))
        spread = f"steps {int(peaks.min())}-{int(peaks.max())}" if peaks.min() != peaks.max() else "all at one step"
        line = f"- phase boundary: I(X;T) peaks at step {median} (median over {n} layers; {spread})"
    else:
        line = f"- phase boundary: I(X;T) peaks at {mi['peak_checkpoint'].mode().iloc[0]} (most layers)"
    lines = [line]
    if mi["noise_scale"].isna().all():
        lines.append(f"- compression: not tested (needs >= 4 checkpoints, have {int(mi['n_checkpoints'].max())})")
        return lines
    compressed = mi[mi["compression"]]
    lines.append(f"- compression after the peak in {len(compressed)}/{n} layers (drop > 3x neighbour noise)")
    if len(compressed):
        top = compressed.loc[compressed["drop"].idxmax()]
        lines.append(
            f"  - largest drop {top['drop']:.3f} nHSIC ({100 * top['relative_drop']:.0f}% of the peak) in layer "
            f"{int(top['layer'])}, peak at {checkpoint_label(top['peak_checkpoint'], top['peak_step'])}"
        )
    return lines


def _degenerate_lines(degenerate: pd.DataFrame, n_checkpoints: int) -> list[str]:
    if degenerate.empty:
        return []
    lines = []
    for (source, layer, reason), group in degenerate.groupby(["source", "layer", "reason"], sort=True):
        count = group["checkpoint"].nunique()
        where = (
            f"all {count} checkpoints"
            if count == n_checkpoints
            else ", ".join(checkpoint_label(c, s) for c, s in zip(group["checkpoint"], group["step"]))
        )
        short = reason.split(";")[0]
        short = short if len(short) <= 64 else short[:61] + "..."
        lines.append(f"  - {source} layer {int(layer)} at {where}: {short}")
    return ["- degenerate cells (no metrics, left out of the figures):"] + lines


def dimension_summary(
    metrics: pd.DataFrame, phases: pd.DataFrame, degenerate: pd.DataFrame, model: str, dimension: str
) -> list[str]:
    """Markdown lines for one model x dimension."""
    here = (metrics["model"] == model) & (metrics["dimension"] == dimension)
    degenerate = degenerate[(degenerate["model"] == model) & (degenerate["dimension"] == dimension)]
    n_checkpoints = len(set(metrics.loc[here, "checkpoint"]) | set(degenerate["checkpoint"]))
    lines = [f"## {dimension} ({model})", ""]
    best = best_layer_per_checkpoint(metrics, model, dimension)
    if best.empty:
        lines.append("- probe: no probe cells")
    else:
        first = earliest_separable(metrics, model, dimension)
        if first is None:
            lines.append(f"- earliest separable checkpoint: none (no best-layer CI low bound above {CHANCE})")
        else:
            lines.append(
                f"- earliest separable checkpoint: {checkpoint_label(first['checkpoint'], first['step'])}, "
                f"layer {int(first['layer'])}, accuracy {_format_ci(first)}"
            )
        top = best.loc[best["value"].idxmax()].to_dict()
        lines.append(
            f"- best probe: layer {int(top['layer'])} at {checkpoint_label(top['checkpoint'], top['step'])}, "
            f"accuracy {_format_ci(top)}"
        )
        layer_phase = phases[
            (phases["model"] == model) & (phases["dimension"] == dimension) & (phases["layer"] == top["layer"])
        ]
        if len(layer_phase) and pd.notna(layer_phase["accuracy_plateau_checkpoint"].iloc[0]):
            plateau = layer_phase.iloc[0]
            lines.append(
                f"- layer {int(top['layer'])} accuracy within 0.01 of its maximum from "
                f"{checkpoint_label(plateau['accuracy_plateau_checkpoint'], plateau['accuracy_plateau_step'])}"
            )
    lines += _phase_lines(phases[(phases["model"] == model) & (phases["dimension"] == dimension)])
    steer = best_steering(metrics, model, dimension)
    if steer is None:
        lines.append("- steering: no steering cells")
    else:
        lines.append(
            f"- best steering effect: margin change {steer['value']:+.4f} nats/token at alpha {steer['alpha']:g}, "
            f"vector from {checkpoint_label(steer['checkpoint'], steer['step'])}, layer {int(steer['layer'])}"
        )
        accuracy_steer = best_steering(metrics, model, dimension, "steering_accuracy_change")
        if accuracy_steer is not None:
            lines.append(
                f"- best prompted-accuracy change: {accuracy_steer['value']:+.3f} at alpha {accuracy_steer['alpha']:g}, "
                f"vector from {checkpoint_label(accuracy_steer['checkpoint'], accuracy_steer['step'])}"
            )
    lines += _degenerate_lines(degenerate, n_checkpoints)
    return lines + [""]


def summary_markdown(metrics: pd.DataFrame, phases: pd.DataFrame, degenerate: pd.DataFrame) -> str:
    """The whole results/summary.md."""
    models = list(dict.fromkeys(metrics["model"].tolist() + degenerate["model"].tolist()))
    lines = [
        "# TrustTrace summary",
        "",
        "Probe accuracy: held-out statements (chance 0.5, 95% bootstrap CI). I(X;T), I(Y;T): normalized",
        "HSIC (unitless). Steering: change of the log-likelihood margin of trustworthy over untrustworthy",
        "statements (nats/token) when the source checkpoint's vector is added at the given alpha.",
        "",
    ]
    for model in models:
        dimensions = list(
            dict.fromkeys(
                metrics.loc[metrics["model"] == model, "dimension"].tolist()
                + degenerate.loc[degenerate["model"] == model, "dimension"].tolist()
            )
        )
        for dimension in dimensions:
            lines += dimension_summary(metrics, phases, degenerate, model, dimension)
    if not models:
        lines.append("No cells yet.")
    return "\n".join(lines).rstrip() + "\n"
