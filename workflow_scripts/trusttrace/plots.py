"""Figures from the tidy tables (seaborn/matplotlib, Agg backend; never torch).

Every function takes DataFrames in the layout of ``trusttrace.aggregate`` and returns a matplotlib Figure;
``save_figure`` writes it as PNG and SVG. Conventions shared by all figures:

* the checkpoint axis is the training step on a symlog scale (linear in [0, 1], logarithmic above), so step 0
  is shown next to log-spaced checkpoints; checkpoints without steps are placed by their order instead;
* units on every axis: accuracy (fraction correct), nHSIC (unitless), nats/token;
* colour-blind-safe colours: viridis for ordered quantities (layer, step), ColorBrewer RdBu for signed alpha,
  seaborn's ``colorblind`` palette for categories.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib import patheffects, ticker  # noqa: E402
from matplotlib.colors import Normalize, SymLogNorm  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

CHANCE = 0.5  # colour-scale anchor of the heatmap; findings compare against the majority baseline instead
ACCURACY_LABEL = "probe accuracy (fraction correct)"
NHSIC_UNIT = "nHSIC (unitless)"
MARGIN_LABEL = "Δ likelihood margin (nats/token)"
STEP_LABEL = "training step (symlog)"
LAYER_CMAP = "viridis"
STEP_CMAP = "viridis"
CATEGORICAL = "colorblind"
DPI = 200


def apply_style() -> None:
    """Paper-like defaults: white background, ticks, 9-10 pt text, editable SVG text."""
    sns.set_theme(context="paper", style="ticks", palette=CATEGORICAL, font_scale=1.15)
    plt.rcParams.update(
        {
            "figure.dpi": 100,
            "savefig.dpi": DPI,
            "savefig.bbox": "tight",
            "svg.fonttype": "none",
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.titleweight": "bold",
            "legend.frameon": False,
        }
    )


def save_figure(figure, png: str | Path, svg: str | Path | None = None) -> None:
    for path in (png, svg):
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            figure.savefig(path)
    plt.close(figure)


# ---------------------------------------------------------------------------------------------------------------
# Selection and axes


def select(metrics: pd.DataFrame, model: str, dimension: str | None = None, metric: str | Sequence[str] | None = None):
    rows = metrics["model"] == model
    if dimension is not None:
        rows &= metrics["dimension"] == dimension
    if metric is not None:
        rows &= metrics["metric"].isin([metric] if isinstance(metric, str) else list(metric))
    return metrics[rows].sort_values(["checkpoint_index", "layer"], kind="stable")


def uses_steps(frame: pd.DataFrame) -> bool:
    return bool(len(frame)) and bool(frame["step"].notna().all())


def x_of(frame: pd.DataFrame, steps: bool) -> np.ndarray:
    return (frame["step"] if steps else frame["checkpoint_index"]).astype(float).to_numpy()


def format_step(value: float, _position=None) -> str:
    """0, 8, 512, 1309, 4k, 15.9k, 143k, 1.5M: step tick labels without scientific notation."""
    value = float(value)
    if value < 0:
        return ""
    if value >= 1e6:
        return f"{value / 1e6:.3g}M"
    if value >= 1e4 or (value >= 1e3 and value % 1000 == 0):
        return f"{value / 1e3:.3g}k"
    return f"{value:g}"


def setup_checkpoint_axis(ax, frame: pd.DataFrame, steps: bool, label: bool = True) -> None:
    """Symlog step axis (linthresh 1, so step 0 sits left of step 1) or checkpoint names by order."""
    if steps:
        ax.set_xscale("symlog", linthresh=1.0, linscale=0.4)
        ax.xaxis.set_major_locator(ticker.SymmetricalLogLocator(base=10, linthresh=1.0))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(format_step))
        ax.xaxis.set_minor_locator(ticker.SymmetricalLogLocator(base=10, linthresh=1.0, subs=np.arange(2, 10)))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        maximum = max(float(frame["step"].max()), 1.0)
        ax.set_xlim(-0.15, maximum * 1.35)
        if label:
            ax.set_xlabel(STEP_LABEL)
    else:
        names = frame.drop_duplicates("checkpoint_index").sort_values("checkpoint_index")
        ax.set_xticks(names["checkpoint_index"].to_numpy(float), names["checkpoint"].tolist(), rotation=45, ha="right")
        if label:
            ax.set_xlabel("checkpoint")


def layer_colours(layers: Sequence[int]) -> dict[int, tuple]:
    layers = sorted(set(int(layer) for layer in layers))
    # viridis' light end (yellow) is hard to see as a line on white: use the 0-0.82 part of the map.
    cmap = plt.get_cmap(LAYER_CMAP)
    palette = [cmap(0.82 * i / (len(layers) - 1)) if len(layers) > 1 else cmap(0.4) for i in range(len(layers))]
    return dict(zip(layers, palette, strict=False))


def alpha_colours(alphas: Sequence[float]) -> dict[float, tuple]:
    """Signed alpha on ColorBrewer RdBu: negative red, positive blue, 0 dark grey; darker = larger |alpha|."""
    cmap = plt.get_cmap("RdBu")
    top = max((abs(a) for a in alphas), default=1.0) or 1.0
    colours = {}
    for alpha in alphas:
        if alpha == 0:
            colours[alpha] = (0.25, 0.25, 0.25, 1.0)
        else:
            strength = 0.3 + 0.7 * abs(alpha) / top
            colours[alpha] = cmap(0.5 + math.copysign(0.5 * strength, alpha) * 0.95)
    return colours


def layer_handles(layers: Sequence[int], colours: dict, most: int = 12, **style) -> list:
    """Legend entries for the layers; with many layers only every k-th one (the colour order says the rest)."""
    layers = sorted(layers)
    shown = [layers[i] for i in _thinned(len(layers), most)]
    if layers and shown[-1] != layers[-1]:
        shown.append(layers[-1])
    handles = [Line2D([], [], color=colours[layer], label=f"layer {layer}", **style) for layer in shown]
    if len(shown) < len(layers):
        handles.append(Line2D([], [], color="none", label="(viridis: dark = shallow)"))
    return handles


def pick_layers(metrics: pd.DataFrame, model: str, dimension: str, n: int = 5) -> list[int]:
    """Up to ``n`` layers to draw as curves: evenly spread over the available layers, plus the best one at the
    last checkpoint."""
    accuracy = select(metrics, model, dimension, "accuracy")
    layers = sorted(accuracy["layer"].unique().tolist())
    if not layers:
        return []
    chosen = {layers[int(round(i))] for i in np.linspace(0, len(layers) - 1, min(n, len(layers)))}
    last = accuracy[accuracy["checkpoint_index"] == accuracy["checkpoint_index"].max()]
    if len(last):
        best = int(last.loc[last["value"].idxmax(), "layer"])
        if best not in chosen:
            chosen.discard(min(chosen - {layers[0], layers[-1]} or chosen, key=lambda layer: abs(layer - best)))
            chosen.add(best)
    return sorted(int(layer) for layer in chosen)


def _no_data(ax, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


# ---------------------------------------------------------------------------------------------------------------
# Probe accuracy


def accuracy_heatmap(metrics: pd.DataFrame, model: str, dimension: str, degenerate: pd.DataFrame | None = None):
    """Layer (rows, deepest on top) x checkpoint (columns, by step) probe accuracy; degenerate cells hatched."""
    accuracy = select(metrics, model, dimension, "accuracy")
    checkpoints = _checkpoint_columns(accuracy)
    layers = sorted(
        set(accuracy["layer"].tolist()) | set(_degenerate_rows(degenerate, model, dimension, "probe")["layer"].tolist())
    )
    n_cols, n_rows = max(len(checkpoints), 1), max(len(layers), 1)
    figure, ax = plt.subplots(figsize=(min(max(2.2 + 0.62 * n_cols, 6.4), 14), min(max(1.6 + 0.34 * n_rows, 3.4), 12)))
    if accuracy.empty:
        _no_data(ax, "no probe cells")
        return figure
    grid = accuracy.pivot_table(index="layer", columns="checkpoint_index", values="value", aggfunc="first").reindex(
        index=layers[::-1], columns=checkpoints["checkpoint_index"].tolist()
    )
    vmin = min(CHANCE, float(np.nanmin(grid.to_numpy())))
    annotate = grid.size <= 160
    ax.set_facecolor("0.88")
    sns.heatmap(
        grid,
        ax=ax,
        cmap=LAYER_CMAP,
        vmin=vmin,
        vmax=1.0,
        annot=annotate,
        fmt=".2f",
        annot_kws={"fontsize": 7.5},
        linewidths=0.6,
        linecolor="white",
        cbar_kws={"label": ACCURACY_LABEL, "shrink": 0.9},
    )
    for i, layer in enumerate(grid.index):
        for j, column in enumerate(grid.columns):
            if np.isnan(grid.loc[layer, column]):
                ax.add_patch(plt.Rectangle((j, i), 1, 1, fill=False, hatch="///", edgecolor="0.6", linewidth=0))
    columns = _thinned(len(checkpoints), 16)
    ax.set_xticks(columns + 0.5, [_column_labels(checkpoints)[i] for i in columns], rotation=0)
    rows = _thinned(len(grid.index), 40)
    ax.set_yticks(rows + 0.5, [str(grid.index[i]) for i in rows], rotation=0)
    ax.set_xlabel("checkpoint (training step)" if uses_steps(checkpoints) else "checkpoint")
    ax.set_ylabel("layer (0 = embeddings)")
    ax.set_title(f"{dimension}: linear-probe accuracy by layer and checkpoint", pad=16)
    if grid.isna().to_numpy().any():
        ax.text(
            1.0,
            1.01,
            "hatched: degenerate cell (no metrics)",
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize=8,
            color="0.35",
        )
    if len(columns) >= 10:
        plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
    figure.tight_layout()
    return figure


def _degenerate_rows(degenerate, model, dimension, source):
    if degenerate is None or degenerate.empty:
        return pd.DataFrame(columns=["model", "checkpoint", "step", "dimension", "layer", "source", "reason"])
    return degenerate[
        (degenerate["model"] == model) & (degenerate["dimension"] == dimension) & (degenerate["source"] == source)
    ]


def _checkpoint_columns(frame: pd.DataFrame) -> pd.DataFrame:
    return (
        frame[["checkpoint_index", "checkpoint", "step"]]
        .drop_duplicates("checkpoint_index")
        .sort_values("checkpoint_index")
    )


def _thinned(n: int, most: int) -> np.ndarray:
    """Every k-th index out of ``n`` so that at most ``most`` ticks are labelled (all of them when they fit)."""
    return np.arange(0, n, max(1, math.ceil(n / most)))


def _column_labels(checkpoints: pd.DataFrame) -> list[str]:
    if uses_steps(checkpoints):
        return [format_step(step) for step in checkpoints["step"]]
    return checkpoints["checkpoint"].tolist()


def accuracy_curves(metrics: pd.DataFrame, model: str, dimension: str, layers: Sequence[int] | None = None):
    """Probe accuracy vs step for a few layers: 95% Wilson band, permuted-label accuracy dashed, the majority
    baseline dotted."""
    layers = list(layers) if layers is not None else pick_layers(metrics, model, dimension)
    frame = select(metrics, model, dimension, ["accuracy", "permuted_label_accuracy"])
    figure, ax = plt.subplots(figsize=(6.6, 4.2))
    if frame.empty or not layers:
        _no_data(ax, "no probe cells")
        return figure
    steps = uses_steps(frame)
    colours = layer_colours(layers)
    for layer in layers:
        colour = colours[layer]
        probe = frame[(frame["layer"] == layer) & (frame["metric"] == "accuracy")]
        control = frame[(frame["layer"] == layer) & (frame["metric"] == "permuted_label_accuracy")]
        x = x_of(probe, steps)
        ax.fill_between(x, probe["ci_low"], probe["ci_high"], color=colour, alpha=0.18, linewidth=0)
        ax.plot(x, probe["value"], color=colour, marker="o", markersize=3.5, linewidth=1.8, label=f"layer {layer}")
        if len(control):
            ax.plot(x_of(control, steps), control["value"], color=colour, linestyle="--", linewidth=1.0, alpha=0.8)
    baseline = _majority_baseline(metrics, model, dimension)
    ax.axhline(baseline, color="0.35", linestyle=":", linewidth=1.0)
    setup_checkpoint_axis(ax, frame, steps)
    low = min(0.4, float(np.nanmin(frame[["value", "ci_low"]].to_numpy(float))) - 0.02)
    ax.set_ylim(low, 1.01)
    ax.set_ylabel("accuracy (fraction correct)")
    ax.set_title(f"{dimension}: probe accuracy during pre-training")
    handles, _ = ax.get_legend_handles_labels()
    handles += [
        Patch(facecolor="0.6", alpha=0.35, label="95% Wilson interval"),
        Line2D(
            [], [], color="0.3", linestyle="--", linewidth=1.0, label="negative control\n(probe on permuted labels)"
        ),
        Line2D([], [], color="0.35", linestyle=":", linewidth=1.0, label=f"majority baseline ({baseline:.2f})"),
    ]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8.5)
    figure.tight_layout()
    return figure


def _majority_baseline(metrics: pd.DataFrame, model: str, dimension: str) -> float:
    """The test split's majority-class rate (the same for every cell of a dimension); 0.5 in old tables."""
    baseline = select(metrics, model, dimension, "majority_baseline")["value"]
    return float(baseline.max()) if len(baseline) else CHANCE


# ---------------------------------------------------------------------------------------------------------------
# Mutual information


def information_curves(metrics: pd.DataFrame, phases: pd.DataFrame, model: str, dimension: str):
    """I(X;T) and I(Y;T) vs step, one line per layer; each layer's I(X;T) peak marked (filled: compression
    follows), the median peak step over layers as a vertical line on both panels."""
    frame = select(metrics, model, dimension, ["hsic_ixt", "hsic_iyt"])
    figure, axes = plt.subplots(1, 2, figsize=(11.0, 4.2), sharex=True)
    if frame.empty:
        for ax in axes:
            _no_data(ax, "no mutual-information cells")
        return figure
    steps = uses_steps(frame)
    layers = sorted(frame["layer"].unique().tolist())
    colours = layer_colours(layers)
    phase = phases[(phases["model"] == model) & (phases["dimension"] == dimension)].set_index("layer")
    for ax, metric, title in (
        (axes[0], "hsic_ixt", "I(X;T): information about the input"),
        (axes[1], "hsic_iyt", "I(Y;T): information about the label"),
    ):
        for layer in layers:
            curve = frame[(frame["layer"] == layer) & (frame["metric"] == metric)]
            ax.plot(x_of(curve, steps), curve["value"], color=colours[layer], marker="o", markersize=3, linewidth=1.5)
        setup_checkpoint_axis(ax, frame, steps)
        ax.set_ylabel(f"{title.split(':')[0]}  [{NHSIC_UNIT}]")
        ax.set_title(title, fontsize=10.5)
    ixt = frame[frame["metric"] == "hsic_ixt"]
    for layer in layers:
        if layer not in phase.index or pd.isna(phase.loc[layer, "peak_checkpoint"]):
            continue
        row = phase.loc[layer]
        peak = ixt[(ixt["layer"] == layer) & (ixt["checkpoint"] == row["peak_checkpoint"])]
        if peak.empty:
            continue
        filled = bool(row["compression"])
        axes[0].plot(
            x_of(peak, steps),
            peak["value"],
            marker="D",
            markersize=8,
            markeredgewidth=1.4,
            markeredgecolor="black",
            markerfacecolor=colours[layer] if filled else "white",
            linestyle="none",
            zorder=5,
        )
    boundary = _median_peak_x(phase, ixt, steps)
    if boundary is not None:
        for ax in axes:
            ax.axvline(boundary, color="0.2", linestyle="--", linewidth=1.0, zorder=0)
        axes[0].annotate(
            "phase boundary",
            xy=(boundary, 0.0),
            xycoords=("data", "axes fraction"),
            xytext=(4, 4),
            textcoords="offset points",
            ha="left",
            va="bottom",
            fontsize=8,
            color="0.2",
        )
    handles = layer_handles(layers, colours, marker="o", markersize=3)
    handles += [
        Line2D(
            [],
            [],
            marker="D",
            linestyle="none",
            markerfacecolor="0.5",
            markeredgecolor="black",
            label="peak, compression follows",
        ),
        Line2D(
            [],
            [],
            marker="D",
            linestyle="none",
            markerfacecolor="white",
            markeredgecolor="black",
            label="peak, no compression",
        ),
        Line2D([], [], color="0.2", linestyle="--", label="phase boundary\n(median peak step)"),
    ]
    axes[1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8.5)
    figure.suptitle(
        f"{dimension}: mutual information between representation T and input X / label Y", fontweight="bold"
    )
    figure.tight_layout()
    return figure


def _median_peak_x(phase: pd.DataFrame, ixt: pd.DataFrame, steps: bool) -> float | None:
    if phase.empty or phase["peak_checkpoint"].isna().all():
        return None
    if steps:
        return float(np.median(phase["peak_step"].dropna().astype(float)))
    index = ixt.drop_duplicates("checkpoint").set_index("checkpoint")["checkpoint_index"]
    return float(np.median([index[c] for c in phase["peak_checkpoint"].dropna() if c in index]))


def information_plane(metrics: pd.DataFrame, model: str, dimension: str, most_layers: int = 8):
    """I(X;T) (x) against I(Y;T) (y): one trajectory per layer through the checkpoints, points coloured by step.

    With more than ``most_layers`` layers, that many evenly spread layers (always the last) are drawn, so that the
    trajectories stay apart; the title says so.
    """
    frame = select(metrics, model, dimension, ["hsic_ixt", "hsic_iyt"])
    figure, ax = plt.subplots(figsize=(6.6, 5.2))
    if frame.empty:
        _no_data(ax, "no mutual-information cells")
        return figure
    wide = frame.pivot_table(
        index=["layer", "checkpoint_index", "checkpoint"], columns="metric", values="value", aggfunc="first"
    ).reset_index()
    wide = wide.merge(frame.drop_duplicates("checkpoint_index")[["checkpoint_index", "step"]], on="checkpoint_index")
    wide = wide.dropna(subset=["hsic_ixt", "hsic_iyt"]).sort_values(["layer", "checkpoint_index"])
    layers = sorted(wide["layer"].unique().tolist())
    shown = layers
    if len(layers) > most_layers:
        shown = sorted({layers[int(round(i))] for i in np.linspace(0, len(layers) - 1, most_layers)})
        wide = wide[wide["layer"].isin(shown)]
    steps = uses_steps(wide)
    colour_value = wide["step"].astype(float) if steps else wide["checkpoint_index"].astype(float)
    norm = (
        SymLogNorm(linthresh=1.0, linscale=0.4, vmin=0.0, vmax=max(float(colour_value.max()), 1.0), base=10)
        if steps
        else Normalize(vmin=0.0, vmax=max(float(colour_value.max()), 1.0))
    )
    n_checkpoints = int(wide["checkpoint_index"].nunique())
    for layer, path in wide.groupby("layer", sort=True):
        ax.plot(path["hsic_ixt"], path["hsic_iyt"], color="0.55", linewidth=1.0, zorder=1)
        if len(path) > 1:
            # an arrow on the last segment shows the direction of training
            ax.annotate(
                "",
                xy=(path["hsic_ixt"].iloc[-1], path["hsic_iyt"].iloc[-1]),
                xytext=(path["hsic_ixt"].iloc[-2], path["hsic_iyt"].iloc[-2]),
                arrowprops={"arrowstyle": "-|>", "color": "0.3", "linewidth": 1.0, "shrinkA": 0, "shrinkB": 4},
                zorder=2,
            )
        ax.annotate(
            f"L{layer}",
            xy=(path["hsic_ixt"].iloc[-1], path["hsic_iyt"].iloc[-1]),
            xytext=(6, 2),
            textcoords="offset points",
            fontsize=8.5,
            fontweight="bold",
            color="0.1",
            zorder=4,
            path_effects=[patheffects.withStroke(linewidth=2.5, foreground="white")],
        )
    points = ax.scatter(
        wide["hsic_ixt"],
        wide["hsic_iyt"],
        c=colour_value,
        cmap=STEP_CMAP,
        norm=norm,
        s=34 if n_checkpoints <= 12 else 16,
        edgecolors="black",
        linewidths=0.4 if n_checkpoints <= 12 else 0.25,
        zorder=3,
    )
    bar = figure.colorbar(points, ax=ax, pad=0.02)
    if steps:
        bar.set_label("training step (symlog)")
        checkpoint_steps = np.unique(wide["step"].to_numpy(float))
        if len(checkpoint_steps) <= 10:  # few checkpoints: tick each of them
            bar.set_ticks(checkpoint_steps, labels=[format_step(step) for step in checkpoint_steps])
            bar.ax.minorticks_off()
        else:
            bar.locator = ticker.SymmetricalLogLocator(base=10, linthresh=1.0)
            bar.formatter = ticker.FuncFormatter(format_step)
            bar.update_ticks()
    else:
        names = wide.drop_duplicates("checkpoint_index").sort_values("checkpoint_index")
        bar.set_ticks(names["checkpoint_index"].to_numpy(float), labels=names["checkpoint"].tolist())
        bar.set_label("checkpoint")
    title = f"{dimension}: information plane (L = layer)"
    if len(shown) < len(layers):
        title = f"{dimension}: information plane ({len(shown)} of {len(layers)} layers)"
    ax.set_xlabel(f"I(X;T)  [{NHSIC_UNIT}]")
    ax.set_ylabel(f"I(Y;T)  [{NHSIC_UNIT}]")
    ax.set_title(title)
    ax.margins(0.08)
    figure.tight_layout()
    return figure


# ---------------------------------------------------------------------------------------------------------------
# Steering


STEERING_MEASURE_LABELS = {
    "likelihood_margin": "likelihood-margin effect (nats/token)",
    "prompted_margin": "prompted-answer margin effect (nats)",
}


def steering_measure(metrics: pd.DataFrame, model: str, dimension: str | None = None) -> str | None:
    """The measure steering is judged by: the prompted margin where the target was prompted, else the likelihood
    margin (``trusttrace.steering_selection``); None without steering effects."""
    for measure in ("prompted_margin", "likelihood_margin"):
        if len(select(metrics, model, dimension, f"steering_effect_{measure}")):
            return measure
    return None


def _steering_effect_lines(ax, frame: pd.DataFrame, measure: str, layer, alphas, colours, steps, marker="o") -> None:
    """Test-split effect of each alpha > 0 with its 95 % CI band (colour) and the random-direction control's
    mean +- SD (grey band, dashed) on the same axis."""
    for alpha in alphas:
        rows = frame[(frame["layer"] == layer) & (frame["alpha"] == alpha)]
        effect = rows[rows["metric"] == f"steering_effect_{measure}"]
        random = rows[rows["metric"] == f"steering_random_{measure}"]
        spread = rows[rows["metric"] == f"steering_random_sd_{measure}"].set_index("checkpoint_index")["value"]
        if len(random):
            x = x_of(random, steps)
            sd = spread.reindex(random["checkpoint_index"]).to_numpy(float)
            ax.fill_between(x, random["value"] - sd, random["value"] + sd, color="0.55", alpha=0.18, linewidth=0)
            ax.plot(x, random["value"], color=colours[alpha], linestyle="--", linewidth=0.9, alpha=0.8)
        if len(effect):
            x = x_of(effect, steps)
            ax.fill_between(x, effect["ci_low"], effect["ci_high"], color=colours[alpha], alpha=0.18, linewidth=0)
            ax.plot(x, effect["value"], color=colours[alpha], marker=marker, markersize=3.5, linewidth=1.8)
    ax.axhline(0, color="0.6", linewidth=0.6, zorder=0)


def steering_effect(metrics: pd.DataFrame, model: str, dimension: str, target: str | None = None):
    """Steering effect vs the source checkpoint of the vector, on the test rows: top row the antisymmetric effect
    (m(+a) - m(-a)) / 2 of each alpha > 0 with its 95 % bootstrap CI, next to the same effect of random directions
    of the vector's norm (dashed, grey band: mean +- SD); bottom row the fluency cost (fall of the mean
    log-likelihood of all evaluated statements at +a; dashed: random directions). One column per steering layer;
    the setting chosen on the validation rows is ringed."""
    from trusttrace.steering_selection import select_steering

    measure = steering_measure(metrics, model, dimension)
    frame = select(metrics, model, dimension)
    frame = frame[(frame["source"] == "steering") & (frame["alpha"] > 0)]
    layers = sorted(frame["layer"].unique().tolist()) or [None]
    figure, axes = plt.subplots(2, len(layers), figsize=(1.6 + 4.6 * len(layers), 7.2), squeeze=False, sharex=True)
    if measure is None or frame.empty:
        _no_data(axes[0, 0], "no steering cells")
        return figure
    steps = uses_steps(frame)
    alphas = sorted(frame.loc[frame["metric"] == f"steering_effect_{measure}", "alpha"].unique().tolist())
    colours = alpha_colours(alphas)
    chosen = select_steering(metrics, model, dimension)
    for column, layer in enumerate(layers):
        top, bottom = axes[0, column], axes[1, column]
        _steering_effect_lines(top, frame, measure, layer, alphas, colours, steps)
        for alpha in alphas:
            rows = frame[(frame["layer"] == layer) & (frame["alpha"] == alpha)]
            for metric, style in (("steering_fluency_cost", "-"), ("steering_random_fluency_cost", "--")):
                line = rows[rows["metric"] == metric]
                bottom.plot(
                    x_of(line, steps),
                    line["value"],
                    color=colours[alpha],
                    linestyle=style,
                    marker="o" if style == "-" else None,
                    markersize=3,
                )
        bottom.axhline(0, color="0.6", linewidth=0.6, zorder=0)
        if chosen is not None and chosen["steering_best_layer"] == layer:
            point = frame[
                (frame["metric"] == f"steering_effect_{measure}")
                & (frame["layer"] == layer)
                & (frame["alpha"] == chosen["steering_best_alpha"])
                & (frame["checkpoint"] == chosen["steering_best_checkpoint"])
            ]
            top.scatter(
                x_of(point, steps),
                point["value"],
                s=140,
                facecolors="none",
                edgecolors="black",
                linewidths=1.4,
                zorder=5,
            )
        for ax in (top, bottom):
            setup_checkpoint_axis(ax, frame, steps, label=ax is bottom)
        bottom.set_xlabel("source checkpoint of the vector: " + (STEP_LABEL if steps else "checkpoint"))
        if column == 0:
            top.set_ylabel(STEERING_MEASURE_LABELS[measure] + "\n(test rows)")
            bottom.set_ylabel("fluency cost (nats/token)")
        top.set_title(f"layer-{layer} vector" + (f" added to {target}" if target else ""), fontsize=10)
    handles = [
        Line2D([], [], color=colours[a], marker="o", linewidth=1.8, label=f"alpha {a:+g} (95% CI band)") for a in alphas
    ]
    handles += [
        Line2D([], [], color="0.4", linestyle="--", linewidth=0.9, label="random directions, same norm (mean +- SD)"),
        Line2D(
            [],
            [],
            color="black",
            marker="o",
            markerfacecolor="none",
            linestyle="none",
            markersize=9,
            label="chosen on validation rows",
        ),
    ]
    axes[0, -1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8.5)
    figure.suptitle(f"{dimension}: steering toward the trustworthy side, by source checkpoint", fontweight="bold")
    figure.tight_layout()
    return figure


# ---------------------------------------------------------------------------------------------------------------
# Overview and pre-training loss


def overview(metrics: pd.DataFrame, phases: pd.DataFrame, model: str, dimensions: Sequence[str]):
    """One row per dimension: best-layer probe accuracy, I(X;T), I(Y;T), steering effect next to its random
    control."""
    measure = steering_measure(metrics, model)
    has_steering = measure is not None
    columns = ["accuracy", "hsic_ixt", "hsic_iyt"] + (["steering"] if has_steering else [])
    titles = {
        "accuracy": "probe accuracy (layer chosen on validation)",
        "hsic_ixt": "I(X;T) per layer",
        "hsic_iyt": "I(Y;T) per layer",
        "steering": "steering effect (test) vs random",
    }
    n = max(len(dimensions), 1)
    figure, axes = plt.subplots(n, len(columns), figsize=(3.7 * len(columns) + 1.2, 2.5 * n + 1.0), squeeze=False)
    model_frame = select(metrics, model)
    steps = uses_steps(model_frame) if len(model_frame) else True
    layers = sorted(select(metrics, model, None, "hsic_ixt")["layer"].unique().tolist())
    colours = layer_colours(layers or [0])
    steering_rows = select(metrics, model, None, f"steering_effect_{measure}") if has_steering else metrics.iloc[:0]
    alphas = sorted(steering_rows.loc[steering_rows["alpha"] > 0, "alpha"].unique().tolist())
    a_colours = alpha_colours(alphas)
    marker = "o" if model_frame["checkpoint_index"].nunique() <= 16 else None  # dots only while they stay apart
    for row, dimension in enumerate(dimensions):
        for column, kind in enumerate(columns):
            ax = axes[row, column]
            if kind == "accuracy":
                _overview_accuracy(ax, metrics, model, dimension, steps, marker)
            elif kind == "steering":
                frame = select(metrics, model, dimension)
                frame = frame[(frame["source"] == "steering") & (frame["alpha"] > 0)]
                if frame.empty:
                    _no_data(ax)
                    continue
                layer = frame["layer"].min()
                _steering_effect_lines(ax, frame, measure, layer, alphas, a_colours, steps, marker)
                ax.text(0.02, 0.96, f"layer {layer}", transform=ax.transAxes, fontsize=7.5, va="top", color="0.3")
            else:
                frame = select(metrics, model, dimension, kind)
                if frame.empty:
                    _no_data(ax)
                    continue
                for layer, curve in frame.groupby("layer", sort=True):
                    ax.plot(
                        x_of(curve, steps),
                        curve["value"],
                        color=colours[layer],
                        marker=marker,
                        markersize=2.5,
                        linewidth=1.3,
                    )
                phase = phases[(phases["model"] == model) & (phases["dimension"] == dimension)]
                boundary = _median_peak_x(
                    phase.set_index("layer"), select(metrics, model, dimension, "hsic_ixt"), steps
                )
                if boundary is not None:
                    ax.axvline(boundary, color="0.2", linestyle="--", linewidth=0.9, zorder=0)
            setup_checkpoint_axis(ax, model_frame, steps, label=row == n - 1)
            if row < n - 1:
                ax.tick_params(labelbottom=False)
            if row == 0:
                ax.set_title(titles[kind], fontsize=10.5)
            ax.set_ylabel(
                {
                    "accuracy": "accuracy",
                    "hsic_ixt": NHSIC_UNIT,
                    "hsic_iyt": NHSIC_UNIT,
                    "steering": "nats" + ("/token" if measure == "likelihood_margin" else ""),
                }[kind],
                fontsize=9,
            )
        axes[row, 0].annotate(
            dimension,
            xy=(-0.42, 0.5),
            xycoords="axes fraction",
            rotation=90,
            ha="center",
            va="center",
            fontsize=11.5,
            fontweight="bold",
        )
    handles = layer_handles(layers, colours, most=8, linewidth=1.5)
    handles += [
        Line2D([], [], color="black", linewidth=1.6, label="validation-chosen layer (95% Wilson band)"),
        Line2D([], [], color="black", linestyle="--", linewidth=1.0, label="permuted-label probe / I(X;T) peak"),
    ]
    handles += [Line2D([], [], color=a_colours[a], linewidth=1.6, label=f"alpha {a:+g} effect") for a in alphas]
    if alphas:
        handles.append(Line2D([], [], color="0.4", linestyle="--", linewidth=0.9, label="random directions"))
    per_row = 10
    figure.legend(
        handles=handles, loc="lower center", ncol=min(len(handles), per_row), bbox_to_anchor=(0.5, 0.0), fontsize=8.5
    )
    figure.suptitle(f"{model}: trustworthiness during pre-training, all dimensions", fontweight="bold", fontsize=13)
    legend_height = 0.3 * math.ceil(len(handles) / per_row) / figure.get_figheight()
    figure.tight_layout(rect=(0.02, legend_height + 0.01, 1, 1))
    return figure


def _overview_accuracy(ax, metrics, model, dimension, steps, marker="o"):
    """The layer chosen on validation at each checkpoint: test accuracy with its interval, the permuted-label
    negative control dashed, the majority baseline dotted."""
    from trusttrace.findings import selected_layers

    best = selected_layers(metrics, model, dimension)
    if best.empty:
        _no_data(ax)
        return
    x = x_of(best, steps)
    ax.fill_between(
        x, best["ci_low"].astype(float), best["ci_high"].astype(float), color="black", alpha=0.15, linewidth=0
    )
    ax.plot(x, best["accuracy"], color="black", marker=marker, markersize=2.5, linewidth=1.6)
    ax.plot(x, best["permuted_label_accuracy"], color="black", linestyle="--", linewidth=1.0)
    ax.axhline(_majority_baseline(metrics, model, dimension), color="0.5", linestyle=":", linewidth=0.9)
    ax.set_ylim(min(0.4, float(np.nanmin(best["ci_low"].to_numpy(float))) - 0.02), 1.01)


def pretrain_loss(loss: pd.DataFrame, model: str, checkpoint_steps: Sequence[int] = ()):
    """Training loss per step (light) and its running mean (dark); analysed checkpoints as ticks on top."""
    frame = loss[loss["model"] == model].sort_values("step")
    figure, ax = plt.subplots(figsize=(6.4, 3.8))
    if frame.empty:
        _no_data(ax, "no training steps logged")
        return figure
    colour = sns.color_palette(CATEGORICAL)[0]
    window = max(1, len(frame) // 50)
    if window > 1:
        ax.plot(frame["step"], frame["loss"], color=colour, alpha=0.3, linewidth=0.8, label="per step")
        smooth = frame["loss"].rolling(window, min_periods=1, center=True).mean()
        ax.plot(frame["step"], smooth, color=colour, linewidth=1.8, label=f"running mean ({window} steps)")
    else:
        ax.plot(frame["step"], frame["loss"], color=colour, linewidth=1.6, marker="o", markersize=2.5, label="per step")
    for step in checkpoint_steps:
        ax.axvline(step, color="0.5", linewidth=0.6, linestyle=":", zorder=0)
    setup_checkpoint_axis(ax, pd.DataFrame({"step": [0, *frame["step"].tolist()], "checkpoint_index": 0}), True)
    ax.set_ylabel("training loss (nats/token)")
    ax.set_title(f"{model}: pre-training loss (dotted: analysed checkpoints)")
    ax.legend(fontsize=8.5)
    figure.tight_layout()
    return figure
