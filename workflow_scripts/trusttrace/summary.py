"""results/summary.md: the key findings per model x dimension in a few lines, readable in a terminal.

Pure functions over the tidy tables of ``trusttrace.aggregate``; no snakemake object, no plotting.
"""

from __future__ import annotations

import math

import pandas as pd


def checkpoint_label(checkpoint: str, step) -> str:
    """``step 64`` when the checkpoint is named after its step, else ``main (step 143000)`` / ``main``."""
    if step is None or (isinstance(step, float) and math.isnan(step)) or step is pd.NA:
        return str(checkpoint)
    step = int(step)
    return f"step {step}" if str(checkpoint) == f"step{step}" else f"{checkpoint} (step {step})"


def _interval(value, low, high) -> str:
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def _missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _curve_line(curve: pd.DataFrame) -> str:
    points = [
        f"{checkpoint_label(r.checkpoint, r.step)}: {r.accuracy:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}] L{int(r.layer)}"
        + ("*" if r.separable else "")
        for r in curve.itertuples()
    ]
    return "- selected-layer test accuracy by checkpoint (* = separable): " + "; ".join(points)


def _probe_lines(finding: dict, curve: pd.DataFrame) -> list[str]:
    if curve.empty:
        return ["- probe: no probe cells"]
    baseline = finding["majority_baseline"]
    how = (
        "layers chosen on the validation split"
        if finding["selection"] == "validation"
        else "no validation rows: layer chosen on test, interval Bonferroni-widened over the layers"
    )
    lines = [f"- majority baseline (test split) {baseline:.3f}; {how}"]
    if _missing(finding["earliest_separable_checkpoint"]):
        lines.append("- earliest separable checkpoint: none (no selected layer's interval above the baseline)")
    else:
        lines.append(
            f"- earliest separable checkpoint: "
            f"{checkpoint_label(finding['earliest_separable_checkpoint'], finding['earliest_separable_step'])}, "
            f"layer {int(finding['earliest_separable_layer'])}, accuracy "
            + _interval(
                finding["earliest_separable_accuracy"],
                finding["earliest_separable_accuracy_ci_low"],
                finding["earliest_separable_accuracy_ci_high"],
            )
        )
    lines.append(
        f"- best probe (chosen on validation): layer {int(finding['best_layer'])} at "
        f"{checkpoint_label(finding['best_checkpoint'], finding['best_step'])}, test accuracy "
        + _interval(finding["best_accuracy"], finding["best_accuracy_ci_low"], finding["best_accuracy_ci_high"])
    )
    lines.append(_curve_line(curve))
    controls = (
        ("negative", "probes on permuted labels", "mean accuracy {permuted_label_accuracy_mean:.3f}, "),
        ("positive", "learned during pre-training", "first checkpoint {first_checkpoint_accuracy:.3f}, "),
    )
    for kind, what, detail in controls:
        passed = finding[f"{kind}_control_passed"]
        if _missing(passed):
            continue
        if kind == "negative":
            detail += f"{100 * finding['permuted_label_separable_fraction']:.1f}% of cells above the baseline"
        else:
            detail += "last {last_checkpoint_accuracy:.3f}; passes when the first is not separable and the last is"
        verdict = "passed" if passed else "FAILED"
        lines.append(f"- {kind} control ({what}): {verdict} (" + detail.format(**finding) + ")")
    return lines


def _steering_lines(finding: dict) -> list[str]:
    if _missing(finding.get("steering_effect")):
        return ["- steering: no steering cells, or no alpha > 0 evaluated"]
    return [
        f"- steering toward the trustworthy side: effect {finding['steering_effect']:+.4f} "
        f"[{finding['steering_effect_ci_low']:+.4f}, {finding['steering_effect_ci_high']:+.4f}] at alpha "
        f"{finding['steering_best_alpha']:g}, layer {int(finding['steering_best_layer'])}, vector from "
        f"{finding['steering_best_checkpoint']}",
        "  (alpha, layer and source checkpoint chosen on validation, reported on test); random directions of the "
        f"same norm {finding['steering_random_control']:+.4f}; fluency cost {finding['steering_fluency_cost']:+.4f}",
    ]


def _layer_list(value) -> list[int]:
    """A findings list column as read back from Parquet (an array, possibly empty) or built in memory."""
    return [] if value is None or (isinstance(value, float) and math.isnan(value)) else [int(v) for v in value]


def _phase_lines(finding: dict, phases: pd.DataFrame) -> list[str]:
    mi = phases[phases["n_checkpoints"].notna()] if "n_checkpoints" in phases else phases
    if mi.empty:
        return ["- phases: no mutual-information cells"]
    n = int(mi["layer"].nunique())
    fitting, compression = _layer_list(finding["fitting_layers"]), _layer_list(finding["compression_layers"])
    lines = [
        f"- fitting (I(X;T) rises significantly to its peak) in {len(fitting)}/{n} layers"
        + (f": {', '.join(map(str, fitting))}" if fitting else ""),
        f"- compression (after fitting, I(X;T) falls significantly while I(Y;T) does not) in "
        f"{len(compression)}/{n} layers" + (f": {', '.join(map(str, compression))}" if compression else ""),
    ]
    for row in mi[mi["layer"].isin(compression)].itertuples():
        lines.append(
            f"  - layer {int(row.layer)}: fitting until "
            f"{checkpoint_label(row.fitting_end_checkpoint, row.fitting_end_step)}, compression until "
            f"{checkpoint_label(row.compression_end_checkpoint, row.compression_end_step)}"
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
            else ", ".join(checkpoint_label(c, s) for c, s in zip(group["checkpoint"], group["step"], strict=False))
        )
        short = reason.split(";")[0]
        short = short if len(short) <= 64 else short[:61] + "..."
        lines.append(f"  - {source} layer {int(layer)} at {where}: {short}")
    return ["- degenerate cells (no metrics, left out of the figures):"] + lines


def dimension_summary(finding: dict, curve: pd.DataFrame, phases: pd.DataFrame, degenerate: pd.DataFrame) -> list[str]:
    """Markdown lines for one model x dimension, from its findings row and selected-layer curve."""
    model, dimension = finding["model"], finding["dimension"]
    degenerate = degenerate[(degenerate["model"] == model) & (degenerate["dimension"] == dimension)]
    phases = phases[(phases["model"] == model) & (phases["dimension"] == dimension)]
    lines = [f"## {dimension} ({model})", ""]
    lines += _probe_lines(finding, curve)
    lines += _phase_lines(finding, phases)
    lines += _steering_lines(finding)
    lines += _degenerate_lines(degenerate, int(finding["n_checkpoints"]))
    return lines + [""]


HEADER = """# TrustTrace summary

Definitions (README, "Reading the results"). Probe accuracy: held-out test statements, 95% Wilson interval;
the layer of each checkpoint is chosen on the validation split, never on test. Separable: the interval lies
above the majority baseline (the test split's majority-class rate). Fitting / compression: significant changes
of nHSIC I(X;T) and I(Y;T) against the curve's own noise (estimator bootstrap + between-checkpoint noise).
Steering: only alpha > 0 (toward the trustworthy side) counts; chosen on validation, reported on test with a
paired bootstrap interval, next to random directions of the same norm and the fluency cost.
"""


def summary_markdown(
    findings: pd.DataFrame,
    metrics: pd.DataFrame,
    phases: pd.DataFrame,
    degenerate: pd.DataFrame,
    ci_level: float = 0.95,
) -> str:
    """The whole results/summary.md, rendered from the findings table (one section per model x dimension)."""
    from trusttrace.findings import selected_layers

    lines = [HEADER]
    for finding in findings.to_dict("records"):
        curve = selected_layers(metrics, finding["model"], finding["dimension"], ci_level)
        lines += dimension_summary(finding, curve, phases, degenerate)
    if findings.empty:
        lines.append("No cells yet.")
    return "\n".join(lines).rstrip() + "\n"
