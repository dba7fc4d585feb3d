"""Tests for trusttrace.aggregate / summary / plots on synthetic cell files, plus one end-to-end workflow run.

The synthetic grid mirrors what the cell rules write: results/{probe,mi,steering}/<model>/<checkpoint>/<dimension>/
layer=L.json, every file repeating its cell keys, layer 0 degenerate (embedding of a shared final token).
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from helpers import REPO, tiny_workflow
from trusttrace.aggregate import (
    DEGENERATE_SCHEMA,
    METRICS_SCHEMA,
    degenerate_table,
    metrics_table,
    pretrain_loss_table,
    read_cells,
    write_table,
)
from trusttrace.errors import TrustTraceError
from trusttrace.findings import findings_table, selected_layers
from trusttrace.phases import PHASES_SCHEMA, phases_table
from trusttrace.summary import summary_markdown

MODEL = "toy"
STEPS = [0, 1, 4, 16, 64, 256, 1000, 4000]
LAYERS = [0, 1, 2, 3]
DIMENSIONS = ["reliability", "privacy"]
ALPHAS = [-4.0, -1.0, 0.0, 1.0, 4.0]
DEGENERATE = "all 32 features are constant (zero variance over 48 train rows)"
IXT_PEAK = 64  # the synthetic I(X;T) of layers >= 1 rises until step 64, then falls (reliability only)


def cell_keys(step, dimension, layer):
    return {
        "model": MODEL,
        "checkpoint": f"step{step}",
        "step": step,
        "tokens": step * 512,
        "dimension": dimension,
        "layer": layer,
    }


def accuracy_of(step, dimension, layer):
    """Rises with log step; deeper layers separate better; privacy never leaves chance at layer 1."""
    growth = 1 - math.exp(-math.log1p(step) / 3)
    ceiling = {1: 0.72, 2: 0.9, 3: 0.86}[layer] if dimension == "reliability" else {1: 0.5, 2: 0.8, 3: 0.78}[layer]
    return round(0.5 + (ceiling - 0.5) * growth, 4)


def ixt_of(index, dimension, layer):
    if dimension == "reliability":  # rise to STEPS.index(IXT_PEAK) = 4, then fall
        peak = STEPS.index(IXT_PEAK)
        return round(0.3 + 0.1 * layer + (0.1 * index if index <= peak else 0.4 - 0.08 * (index - peak)), 4)
    return round(0.2 + 0.05 * layer + 0.04 * index, 4)  # monotone rising


def steering_effect_entry(index, alpha, split):
    """Validation effect-minus-random peaks at step 256 (index 5), alpha 1; test numbers differ from validation."""
    on_validation = split == "validation"
    vs_random = (0.05 - 0.01 * abs(index - 5)) / alpha if on_validation else 0.001 * index * alpha
    effect = vs_random + 0.003
    return {
        "measure": "likelihood_margin",
        "split": split,
        "alpha": alpha,
        "antisymmetric": True,
        "effect": effect,
        "effect_ci_low": effect - 0.01,
        "effect_ci_high": effect + 0.01,
        "random_mean": 0.003,
        "random_sd": 0.002,
        "random_min": 0.0,
        "random_max": 0.006,
        "effect_vs_random": vs_random,
        "effect_vs_random_ci_low": vs_random - 0.004,
        "effect_vs_random_ci_high": vs_random + 0.004,
        "fluency_cost": 0.1 * alpha,
        "random_fluency_cost": 0.09 * alpha,
    }


def write_grid(root: Path, steps=STEPS, dimensions=DIMENSIONS) -> dict:
    """Probe, MI and steering cells for the synthetic grid; returns the cell directories per source."""
    directories = {"probe": [], "mi": [], "steering": []}
    for index, step in enumerate(steps):
        for dimension in dimensions:
            for source in ("probe", "mi", "steering"):
                directory = root / "results" / source / MODEL / f"step{step}" / dimension
                directory.mkdir(parents=True)
                directories[source].append(directory)
                for layer in LAYERS if source != "steering" else [2]:
                    content = cell_keys(step, dimension, layer)
                    if layer == 0:
                        content["degenerate"] = DEGENERATE
                    elif source == "probe":
                        accuracy = accuracy_of(step, dimension, layer)
                        content.update(
                            accuracy=accuracy,
                            accuracy_ci_low=round(accuracy - 0.06, 4),
                            accuracy_ci_high=round(min(accuracy + 0.06, 1.0), 4),
                            validation_accuracy=accuracy,
                            majority_baseline=0.5,
                            permuted_label_accuracy=0.5 + 0.01 * layer,
                            accuracy_above_permuted=round(accuracy - 0.5 - 0.01 * layer, 4),
                            mass_mean_accuracy=accuracy - 0.02,
                            v_information_bits=0.1 * layer,
                            h_y_bits=1.0,
                            probe_cross_entropy_bits=1.0 - 0.1 * layer,
                            n_train=160,
                            n_validation=40,
                            n_test=40,
                            n_features=32,
                            n_constant_features=0,
                            C=1.0,
                            seed=0,
                            ci_level=0.95,
                        )
                    elif source == "mi":
                        content.update(
                            hsic_ixt=ixt_of(index, dimension, layer),
                            hsic_iyt=round(0.1 + 0.05 * index * layer / 3, 4),
                            hsic_ixt_median=0.5,
                            hsic_iyt_median=0.4,
                            cka_xt=0.3,
                            cka_yt=0.2,
                            m=200,
                            sigma=50,
                            input_layer=1,
                            estimator="nHSIC (Qian et al. 2024)",
                        )
                    else:
                        by_alpha = [
                            {
                                "alpha": a,
                                "margin": -0.01 + 0.002 * a * index,
                                "margin_change": round(0.002 * a * index, 6),
                            }
                            for a in ALPHAS
                        ]
                        content.update(
                            target_model=MODEL,
                            target_checkpoint=f"step{steps[-1]}",
                            n_validation=12,
                            n_test=12,
                            trustworthy_label=1,
                            by_alpha=by_alpha,
                            by_alpha_validation=by_alpha,
                            effects=[
                                steering_effect_entry(index, a, split)
                                for a in ALPHAS
                                if a > 0
                                for split in ("test", "validation")
                            ],
                            selection_on_test_half=True,
                        )
                    (directory / f"layer={layer}.json").write_text(json.dumps(content))
    return directories


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid")
    directories = write_grid(root)
    records = [r for source, dirs in directories.items() for r in read_cells(dirs, source)]
    metrics = metrics_table(records)
    return {
        "root": root,
        "records": records,
        "metrics": metrics,
        "degenerate": degenerate_table(records),
        "phases": phases_table(metrics),
    }


# ---------------------------------------------------------------------------------------------------------------
# Tidy table


def test_tidy_table_rows_equal_inputs(tmp_path):
    directory = tmp_path / "probe" / MODEL / "step16" / "reliability"
    directory.mkdir(parents=True)
    probe = {
        **cell_keys(16, "reliability", 2),
        "accuracy": 0.8125,
        "accuracy_ci_low": 0.7,
        "accuracy_ci_high": 0.9,
        "permuted_label_accuracy": 0.55,
        "accuracy_above_permuted": 0.2625,
        "mass_mean_accuracy": 0.75,
        "v_information_bits": 0.31,
        "h_y_bits": 1.0,
        "probe_cross_entropy_bits": 0.69,
        "n_train": 160,
        "C": 1.0,
    }
    (directory / "layer=2.json").write_text(json.dumps(probe))
    (directory / "layer=0.json").write_text(json.dumps({**cell_keys(16, "reliability", 0), "degenerate": DEGENERATE}))
    steering_dir = tmp_path / "steering" / MODEL / "step16" / "reliability"
    steering_dir.mkdir(parents=True)
    steering = {
        **cell_keys(16, "reliability", 2),
        "by_alpha": [
            {
                "alpha": -1.0,
                "margin": 0.1,
                "margin_change": -0.05,
                "accuracy": 0.4,
                "accuracy_change": -0.1,
                "answer_mass": 0.9,
            },
            {
                "alpha": 0.0,
                "margin": 0.15,
                "margin_change": 0.0,
                "accuracy": 0.5,
                "accuracy_change": 0.0,
                "answer_mass": 0.8,
            },
        ],
        "by_alpha_validation": [{"alpha": 1.0, "margin": 0.2, "fluency": -3.5}],
        "effects": [
            {**steering_effect_entry(2, 1.0, "test"), "measure": "prompted_margin"},
            steering_effect_entry(2, 1.0, "validation"),
        ],
        "selection_on_test_half": False,
    }
    (steering_dir / "layer=2.json").write_text(json.dumps(steering))

    records = read_cells([directory], "probe") + read_cells([steering_dir], "steering")
    table = metrics_table(records)
    assert list(table.columns) == [f.name for f in METRICS_SCHEMA]
    probe_rows = table[table["source"] == "probe"].set_index("metric")
    assert sorted(probe_rows.index) == sorted(
        [
            "accuracy",
            "permuted_label_accuracy",
            "accuracy_above_permuted",
            "mass_mean_accuracy",
            "v_information_bits",
            "h_y_bits",
            "probe_cross_entropy_bits",
        ]
    )  # settings (C, n_train) are not metrics; the degenerate layer 0 gives no rows
    for metric in probe_rows.index:
        assert probe_rows.loc[metric, "value"] == probe[metric]
    assert (probe_rows.loc["accuracy", "ci_low"], probe_rows.loc["accuracy", "ci_high"]) == (0.7, 0.9)
    assert probe_rows.loc["accuracy_above_permuted", ["ci_low", "ci_high"]].isna().all()
    assert probe_rows["alpha"].isna().all()
    assert (
        set(probe_rows["layer"]) == {2} and set(probe_rows["step"]) == {16} and set(probe_rows["tokens"]) == {16 * 512}
    )
    assert set(probe_rows["checkpoint"]) == {"step16"} and set(probe_rows["model"]) == {MODEL}

    steer = table[table["source"] == "steering"]
    by_metric = steer.set_index(["metric", "alpha"])
    # per alpha: 5 metrics x 2 alphas (test), 2 validation; effects: 4 per entry, + 2 fluency for the likelihood
    # margin; 1 cell metric
    assert len(steer) == 2 * 5 + 2 + 4 + 4 + 2 + 1
    assert by_metric.loc[("steering_accuracy_change", -1.0), "value"] == -0.1
    assert by_metric.loc[("steering_fluency_validation", 1.0), "value"] == -3.5
    test_entry, validation_entry = steering["effects"]
    row = by_metric.loc[("steering_effect_prompted_margin", 1.0)]
    assert (row["value"], row["ci_low"], row["ci_high"]) == (
        test_entry["effect"],
        test_entry["effect_ci_low"],
        test_entry["effect_ci_high"],
    )
    row = by_metric.loc[("steering_effect_vs_random_likelihood_margin_validation", 1.0)]
    assert (row["value"], row["ci_low"]) == (
        validation_entry["effect_vs_random"],
        validation_entry["effect_vs_random_ci_low"],
    )
    assert by_metric.loc[("steering_random_sd_prompted_margin", 1.0), "value"] == 0.002
    assert pd.isna(by_metric.loc[("steering_random_prompted_margin", 1.0), "ci_low"])
    assert by_metric.loc[("steering_fluency_cost_validation", 1.0), "value"] == 0.1
    assert "steering_fluency_cost" not in set(steer["metric"])  # fluency comes with the likelihood-margin entry
    cell = steer[steer["metric"] == "steering_selection_on_test_half"]
    assert cell["alpha"].isna().all() and cell["value"].tolist() == [0.0]

    # parquet: plain arrow types, no pandas metadata, same values back
    path = tmp_path / "metrics.parquet"
    write_table(table, METRICS_SCHEMA, path, tmp_path / "metrics.csv")
    schema = pq.read_schema(path)
    assert schema.metadata is None or b"pandas" not in schema.metadata
    assert {f.name: str(f.type) for f in schema} == {f.name: str(f.type) for f in METRICS_SCHEMA}
    back = pd.read_parquet(path)
    pd.testing.assert_frame_equal(back, table, check_dtype=False)
    csv = pd.read_csv(tmp_path / "metrics.csv")
    assert len(csv) == len(table) and csv["value"].sum() == pytest.approx(table["value"].sum())


def test_tidy_table_carries_nhsic_cis(tmp_path):
    directory = tmp_path / "mi" / MODEL / "step16" / "reliability"
    directory.mkdir(parents=True)
    record = {
        **cell_keys(16, "reliability", 2),
        "hsic_ixt": 3.2,
        "hsic_ixt_se": 0.1,
        "hsic_ixt_ci_low": 3.0,
        "hsic_ixt_ci_high": 3.4,
        "hsic_iyt": 0.5,
        "hsic_iyt_ci_low": 0.45,
        "hsic_iyt_ci_high": 0.55,
        "cka_xt": 0.3,
        "n_bootstrap": 30,
    }
    (directory / "layer=2.json").write_text(json.dumps(record))
    rows = metrics_table(read_cells([directory], "mi")).set_index("metric")
    assert sorted(rows.index) == ["cka_xt", "hsic_ixt", "hsic_iyt"]  # SEs are CI inputs, not metrics
    assert tuple(rows.loc["hsic_ixt", ["value", "ci_low", "ci_high"]]) == (3.2, 3.0, 3.4)
    assert tuple(rows.loc["hsic_iyt", ["value", "ci_low", "ci_high"]]) == (0.5, 0.45, 0.55)
    assert rows.loc["cka_xt", ["ci_low", "ci_high"]].isna().all()


def test_parquet_readable_by_polars_and_duckdb(tmp_path, grid):
    path = tmp_path / "metrics.parquet"
    write_table(grid["metrics"], METRICS_SCHEMA, path)
    polars = pytest.importorskip("polars", reason="polars not installed")
    frame = polars.read_parquet(path)
    assert frame.height == len(grid["metrics"])
    assert frame.schema["step"] == polars.Int64 and frame.schema["alpha"] == polars.Float64
    duckdb = pytest.importorskip("duckdb", reason="duckdb not installed")
    count = duckdb.sql(f"select count(*) from '{path}' where metric = 'accuracy'").fetchall()[0][0]
    assert count == len(grid["metrics"].query("metric == 'accuracy'"))


def test_grid_table_shape_and_degenerate_cells_skipped(grid):
    metrics, degenerate = grid["metrics"], grid["degenerate"]
    assert 0 not in set(metrics["layer"])
    accuracy = metrics[metrics["metric"] == "accuracy"]
    assert len(accuracy) == len(STEPS) * len(DIMENSIONS) * 3
    assert metrics["checkpoint_index"].max() == len(STEPS) - 1
    assert list(accuracy.groupby("checkpoint")["checkpoint_index"].first().sort_values().index) == [
        f"step{s}" for s in STEPS
    ]
    assert len(degenerate) == len(STEPS) * len(DIMENSIONS) * 2  # probe and mi layer 0 of every cell
    assert set(degenerate["source"]) == {"probe", "mi"} and set(degenerate["reason"]) == {DEGENERATE}
    assert list(degenerate.columns) == [f.name for f in DEGENERATE_SCHEMA]


def test_bad_cell_files_fail_with_the_path(tmp_path):
    directory = tmp_path / "probe" / "m" / "c" / "d"
    directory.mkdir(parents=True)
    (directory / "layer=1.json").write_text("{not json")
    with pytest.raises(TrustTraceError, match="layer=1.json"):
        read_cells([directory], "probe")
    with pytest.raises(TrustTraceError, match="cell directory missing"):
        read_cells([tmp_path / "nowhere"], "probe")


def test_pretrain_loss_table_concatenates_segments(tmp_path):
    (tmp_path / "step0.tsv").write_text("step\tloss\tlr\n")
    (tmp_path / "step2.tsv").write_text("step\tloss\tlr\n1\t6.0\t0.001\n2\t5.5\t0.002\n")
    (tmp_path / "step3.tsv").write_text("step\tloss\tlr\n3\t5.0\t0.002\n")
    files = {(MODEL, name): tmp_path / f"{name}.tsv" for name in ("step0", "step2", "step3")}
    loss = pretrain_loss_table(files, {MODEL: 64})
    assert loss["step"].tolist() == [1, 2, 3]
    assert loss["loss"].tolist() == [6.0, 5.5, 5.0]
    assert loss["checkpoint"].tolist() == ["step2", "step2", "step3"]
    assert loss["tokens"].tolist() == [64.0, 128.0, 192.0]


# ---------------------------------------------------------------------------------------------------------------
# Phases


def test_phases_table_on_grid(grid):
    phases = grid["phases"]
    assert list(phases.columns) == [f.name for f in PHASES_SCHEMA]
    assert len(phases) == len(DIMENSIONS) * 3  # layers 1..3, layer 0 degenerate
    reliability = phases[phases["dimension"] == "reliability"]
    assert set(reliability["peak_step"]) == {IXT_PEAK}
    assert set(reliability["peak_checkpoint"]) == {f"step{IXT_PEAK}"}
    # I(X;T) rises to step 64 and falls to the end while I(Y;T) keeps rising: fitting, then compression
    assert reliability["fitting"].all() and reliability["compression"].all()
    assert set(reliability["fitting_start_step"]) == {0} and set(reliability["fitting_end_step"]) == {IXT_PEAK}
    assert set(reliability["compression_end_step"]) == {STEPS[-1]}
    assert reliability["ixt_rise"].tolist() == pytest.approx([0.4] * 3)
    assert reliability["ixt_drop"].tolist() == pytest.approx([0.08 * 3] * 3)
    assert reliability["drop"].tolist() == reliability["ixt_drop"].tolist()
    index = STEPS.index(IXT_PEAK)
    expected_iyt = [0.1 + 0.05 * (len(STEPS) - 1) * layer / 3 - (0.1 + 0.05 * index * layer / 3) for layer in (1, 2, 3)]
    assert reliability["iyt_change_during_compression"].tolist() == pytest.approx(expected_iyt, abs=2e-4)
    privacy = phases[phases["dimension"] == "privacy"]
    # monotone rise: fitting to the last checkpoint, nothing after it to compress
    assert set(privacy["peak_step"]) == {STEPS[-1]} and privacy["fitting"].all() and not privacy["compression"].any()
    assert privacy["compression_end_step"].isna().all()
    assert set(phases["input_reference"]) == {"same_checkpoint"}
    # accuracy of layer 2 (reliability): first within 0.01 of its maximum
    expected = [accuracy_of(s, "reliability", 2) for s in STEPS]
    first = next(s for s, a in zip(STEPS, expected, strict=False) if a >= max(expected) - 0.01)
    row = reliability.set_index("layer").loc[2]
    assert row["accuracy_plateau_step"] == first and row["accuracy_max"] == max(expected)
    assert "second differences" in row["noise_method"] and "random-walk" in row["noise_method"]


# ---------------------------------------------------------------------------------------------------------------
# Summary


def test_earliest_separable_and_summary_numbers(grid):
    metrics, phases, degenerate = grid["metrics"], grid["phases"], grid["degenerate"]
    # layer 2 scores best on validation after step 0; separable when accuracy - 0.06 > the 0.5 baseline
    expected = next(s for s in STEPS if accuracy_of(s, "reliability", 2) - 0.06 > 0.5)
    curve = selected_layers(metrics, MODEL, "reliability")
    assert set(curve["layer"].iloc[1:]) == {2}  # at step 0 every layer ties at 0.5: the lowest is taken
    assert curve.loc[curve["separable"], "step"].iloc[0] == expected

    findings = findings_table(metrics, phases)
    row = findings.set_index("dimension").loc["reliability"]
    assert (row["earliest_separable_step"], row["earliest_separable_layer"]) == (expected, 2)
    assert list(row["compression_layers"]) == [1, 2, 3] and list(row["fitting_layers"]) == [1, 2, 3]
    assert row["steering_best_alpha"] > 0 and row["steering_best_checkpoint"] == "step256"
    text = summary_markdown(findings, metrics, phases, degenerate)
    assert "## reliability (toy)" in text and "## privacy (toy)" in text
    assert f"earliest separable checkpoint: step {expected}, layer 2" in text
    assert "compression (after fitting, I(X;T) falls significantly while I(Y;T) does not) in 3/3 layers" in text
    assert "fitting until step 64, compression until step 4000" in text
    assert "in 0/3 layers" in text  # privacy rises monotonically: no compression
    assert "steering toward the trustworthy side" in text and "at alpha 1, layer 2, vector from step256" in text
    assert "negative control (probes on permuted labels): passed (mean accuracy 0.5" in text
    assert f"probe layer 0 at all {len(STEPS)} checkpoints" in text


def test_steering_selection_chooses_on_validation_and_reports_test(grid):
    from trusttrace.steering_selection import RESULT_KEYS, select_steering

    metrics = grid["metrics"]
    chosen = select_steering(metrics, MODEL, "reliability")
    assert set(RESULT_KEYS) <= set(chosen)
    # validation effect-minus-random (0.05 - 0.01 |index - 5|) / alpha peaks at index 5 (step 256), alpha 1
    assert (chosen["steering_best_checkpoint"], chosen["steering_best_layer"], chosen["steering_best_alpha"]) == (
        "step256",
        2,
        1.0,
    )
    assert chosen["steering_validation_effect_vs_random"] == pytest.approx(0.05)
    # reported numbers are the test rows': effect_vs_random 0.001 * 5 * 1, effect + 0.003 random mean
    assert chosen["steering_effect_vs_random"] == pytest.approx(0.005)
    assert chosen["steering_effect"] == pytest.approx(0.008) and chosen["steering_effect_ci_low"] == pytest.approx(
        -0.002
    )
    assert chosen["steering_random_control"] == 0.003 and chosen["steering_fluency_cost"] == pytest.approx(0.1)
    assert chosen["steering_metric"] == "likelihood_margin" and chosen["steering_selection_split"] == "test_half"
    assert chosen["steering_improves"] is True  # test CI of effect - random: 0.005 +- 0.004 > 0
    assert chosen["steering_n_candidates"] == len(STEPS) * 2  # alphas 1 and 4

    # a negative alpha is never reported, however large its validation score; test rows never choose
    rigged = metrics.copy()
    mask = rigged["metric"] == "steering_effect_vs_random_likelihood_margin_validation"
    negative = rigged[mask].assign(alpha=-4.0, value=9.0)
    rigged.loc[rigged["metric"] == "steering_effect_vs_random_likelihood_margin", "value"] = 5.0
    chosen_rigged = select_steering(pd.concat([rigged, negative], ignore_index=True), MODEL, "reliability")
    assert chosen_rigged["steering_best_alpha"] > 0 and chosen_rigged["steering_best_checkpoint"] == "step256"
    assert select_steering(metrics, MODEL, "nope") is None
    assert select_steering(metrics[metrics["alpha"].isna() | (metrics["alpha"] <= 0)], MODEL, "reliability") is None


def test_summary_without_separable_checkpoint(grid):
    flat = grid["metrics"].copy()
    flat.loc[flat["metric"] == "accuracy", "ci_low"] = 0.45
    findings = findings_table(flat, grid["phases"])
    assert findings["earliest_separable_checkpoint"].isna().all()
    text = summary_markdown(findings, flat, grid["phases"], grid["degenerate"])
    assert "earliest separable checkpoint: none" in text


# ---------------------------------------------------------------------------------------------------------------
# Figures


def test_figures_render_and_are_not_blank(grid, tmp_path):
    import matplotlib.image
    from trusttrace import plots

    plots.apply_style()
    metrics, phases, degenerate = grid["metrics"], grid["phases"], grid["degenerate"]
    figures = {
        "heatmap": plots.accuracy_heatmap(metrics, MODEL, "reliability", degenerate),
        "curves": plots.accuracy_curves(metrics, MODEL, "reliability"),
        "information": plots.information_curves(metrics, phases, MODEL, "reliability"),
        "plane": plots.information_plane(metrics, MODEL, "reliability"),
        "steering": plots.steering_effect(metrics, MODEL, "reliability", target="toy@step4000"),
        "overview": plots.overview(metrics, phases, MODEL, DIMENSIONS),
    }
    for name, figure in figures.items():
        plots.save_figure(figure, tmp_path / f"{name}.png", tmp_path / f"{name}.svg")
        image = matplotlib.image.imread(tmp_path / f"{name}.png")
        assert image.shape[0] > 300 and image.shape[1] > 500, name
        rgb = (image[..., :3] * 255).astype(np.uint32).reshape(-1, 3)
        colours = np.unique(rgb[:, 0] << 16 | rgb[:, 1] << 8 | rgb[:, 2])
        assert len(colours) > 50, name
        assert "<svg" in (tmp_path / f"{name}.svg").read_text()[:1000]


def test_step_axis_labels():
    from trusttrace.plots import format_step

    assert [format_step(v) for v in (0, 1, 8, 512, 1000, 4000, 143000, 1.5e6)] == [
        "0",
        "1",
        "8",
        "512",
        "1k",
        "4k",
        "143k",
        "1.5M",
    ]


def test_plots_do_not_import_torch():
    code = "import sys, trusttrace.plots, trusttrace.aggregate, trusttrace.summary; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------------------------------
# Workflow


SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def snakemake_command(workdir: Path, *extra: str) -> list[str]:
    """A command on the shared tiny run, with the config it was run with (other tests rewrite its config.yaml)."""
    return [
        str(SNAKEMAKE),
        "--cores",
        "2",
        # Replace, not extend: the workdir's config.yaml may hold another test's config by now.
        "--replace-workflow-config",
        "--configfile",
        str(REPO / "tests" / "configs" / "tiny.yaml"),
        "-d",
        str(workdir),
        "-s",
        str(REPO / "Snakefile"),
        *extra,
    ]


def dry_run_jobs(workdir: Path, *extra: str) -> dict[str, int]:
    """{rule: job count} that a dry run would execute (empty when nothing is to be done)."""
    run = subprocess.run(snakemake_command(workdir, "-n", "--quiet", "rules", *extra), capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    jobs = {}
    for line in (run.stdout + run.stderr).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("job", "total"):
            jobs[parts[0]] = int(parts[1])
    return jobs


@pytest.mark.workflow
def test_tiny_workflow_tables_figures_and_incremental(tmp_path_factory):
    workdir = tiny_workflow(tmp_path_factory)
    results = workdir / "results"
    metrics = pd.read_parquet(results / "tables" / "metrics.parquet")
    assert {"accuracy", "validation_accuracy", "hsic_ixt", "hsic_iyt", "steering_margin_change"} <= set(
        metrics["metric"]
    )
    assert set(metrics["checkpoint"]) == {"step0", "step8"} and set(metrics["step"]) == {0, 8}
    assert 0 not in set(metrics.loc[metrics["source"] != "steering", "layer"])  # layer 0 is degenerate in tiny
    degenerate = pd.read_parquet(results / "tables" / "degenerate_cells.parquet")
    assert set(degenerate["layer"]) == {0}
    phases = pd.read_parquet(results / "tables" / "phases.parquet")
    assert set(phases["layer"]) == {1, 2} and set(phases["dimension"]) == {"reliability"}
    assert not phases["compression"].any()  # 2 checkpoints: too few to tell a drop from noise
    assert not phases["fitting"].any() and phases["noise_scale"].isna().all()
    assert set(phases["input_reference"]) == {"same_checkpoint"}
    hsic = metrics[metrics["metric"].isin(["hsic_ixt", "hsic_iyt"])]
    assert (
        hsic["ci_low"].notna().all()
        and (hsic["ci_low"] <= hsic["value"]).all()
        and (hsic["value"] < hsic["ci_high"]).all()
    )
    loss = pd.read_parquet(results / "tables" / "pretrain_loss.parquet")
    assert loss["step"].tolist() == list(range(1, 9)) and (loss["loss"] > 0).all()
    figures = results / "figures" / "tiny"
    for name in (
        "probe_accuracy_heatmap",
        "probe_accuracy_curves",
        "information_curves",
        "information_plane",
        "steering",
    ):
        for extension in ("png", "svg"):
            assert (figures / "reliability" / f"{name}.{extension}").stat().st_size > 5000, name
    for name in ("overview", "pretrain_loss"):
        assert (figures / f"{name}.png").stat().st_size > 5000
    summary = (results / "summary.md").read_text()
    assert "## reliability (tiny)" in summary and "steering toward the trustworthy side" in summary
    findings = pd.read_parquet(results / "tables" / "findings.parquet")
    assert findings["dimension"].tolist() == ["reliability"] and findings["steering_best_alpha"].item() > 0
    assert "probe layer 0 at all 2 checkpoints" in summary
    for rule in ("aggregate_metrics", "plot_dimension"):
        assert list((workdir / "logs" / rule).rglob("*.log")) and list(
            (workdir / "results" / "benchmarks" / rule).rglob("*.tsv")
        )

    assert dry_run_jobs(workdir) == {}
    # a lost figure redraws only its figure job; re-aggregating never reruns a cell
    (figures / "reliability" / "information_plane.png").unlink()
    assert dry_run_jobs(workdir) == {"plot_dimension": 1, "all": 1}
    rerun = dry_run_jobs(workdir, "--forcerun", "aggregate_metrics")
    assert not {"probe", "mutual_information", "steering_effect", "extract_activations"} & set(rerun)
    assert {"aggregate_metrics", "aggregate_phases", "aggregate_findings", "aggregate_summary", "plot_overview"} <= set(
        rerun
    )
    run = subprocess.run(snakemake_command(workdir), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and (figures / "reliability" / "information_plane.png").is_file()
