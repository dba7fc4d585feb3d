"""The paper's five real datasets end to end on the tiny pre-trained model: every cell written and sane.

The CSVs are the ones Qian et al. 2024 published (see ../shared/datasets/README.md), read in place from
``<repo>/../shared/datasets`` and never copied into the project; each dimension is subsampled to a few dozen
statements (max_samples) so that the run stays short. The dimension specs come from configs/paper-datasets.yaml,
so this also checks that file's CSV names, columns and labels against the real files.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, SHARED_DATASETS as DATASETS, SNAKEFILE, run_workflow

DIMENSIONS = ["reliability", "privacy", "toxicity", "fairness", "robustness"]
MAX_SAMPLES = 80
LAYERS = range(3)  # the tiny model's 2 blocks: hidden states 0..2

pytestmark = pytest.mark.skipif(
    not all(
        (DATASETS / name).is_file()
        for name in ("truthfulqa_train.csv", "confaide.csv", "toxigen.csv", "stereoset.csv", "sst2.csv")
    ),
    reason=f"the paper's datasets are not at {DATASETS} (expected next to the repository: ../shared/datasets)",
)
SUITES = ["pythia-160m", "olmo-1b", "amber-paper", "amber-full", "pythia-70m-smoke"]


def paper_dimensions() -> dict:
    """configs/paper-datasets.yaml's dimensions as a standalone config would hold them (its `null`s only delete
    keys of a config it is layered on), subsampled."""
    overlay = yaml.safe_load((REPO / "configs" / "paper-datasets.yaml").read_text())
    dimensions = {}
    for name, spec in overlay["dimensions"].items():
        dimensions[name] = {key: value for key, value in spec.items() if value is not None}
        dimensions[name]["max_samples"] = MAX_SAMPLES
    return dimensions


def aggregation_defined() -> bool:
    text = (REPO / "rules" / "aggregate.smk").read_text()
    return "rule aggregate_metrics" in text and "metrics.parquet" in text


# ---- the ready configs ----------------------------------------------------------------------------------------


def load_suite(name: str) -> dict:
    from trusttrace import config as tt_config

    config = yaml.safe_load((REPO / "configs" / f"{name}.yaml").read_text())
    config["data_dir"] = str(DATASETS)  # their data_dir is relative to the repository root
    tt_config.validate_schema(config)
    tt_config.check_config(config)
    return config


@pytest.mark.parametrize("name", SUITES)
def test_suite_configs_validate_with_the_papers_dimensions(name):
    config = load_suite(name)
    for dimension, spec in config["dimensions"].items():
        overlay = paper_dimensions()[dimension]
        assert (spec["csv"], spec["trustworthy_label"]) == (overlay["csv"], overlay["trustworthy_label"])
    for model, spec in config["models"].items():
        assert spec["source"] == "hf" and spec["trust_remote_code"] is False
        tokens = [c["tokens"] for c in spec["checkpoints"] if "tokens" in c]
        assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens)


def test_checkpoint_names_follow_each_suites_scheme():
    import re

    pythia = load_suite("pythia-160m")["models"]["pythia-160m"]["checkpoints"]
    assert all(c["name"] == f"step{c['step']}" and c["tokens"] == c["step"] * 2_097_152 for c in pythia)
    # step1 and step2 hold step0's weights upstream (EleutherAI/pythia #83, #198): left out of the config.
    assert [c["step"] for c in pythia][:9] == [0] + [2**i for i in range(2, 10)] and pythia[-1]["step"] == 143_000
    for c in load_suite("olmo-1b")["models"]["olmo-1b"]["checkpoints"]:
        step, billions = map(int, re.fullmatch(r"step(\d+)-tokens(\d+)B", c["name"]).groups())
        assert (c["step"], c["tokens"]) == (step, billions * 10**9)
        assert billions == round(step * 4_194_304 / 1e9)
    paper = load_suite("amber-paper")
    assert [c["name"] for c in paper["models"]["amber"]["checkpoints"]] == [
        f"ckpt_{n:03d}" for n in (0, 1, 2, 5, 10, 20, 50, 100, 179, 358)
    ]
    assert paper["models"]["amberchat"]["analyse"] is False
    assert (
        paper["models"]["amberchat"]["chat"] is True and paper["models"]["amberchat"]["allow_pickle_weights"] is False
    )
    assert paper["steering"]["source_checkpoints"] == ["ckpt_179"] and paper["steering"]["layers"] == [16]
    assert -1 in paper["steering"]["alphas"] and 0 in paper["steering"]["alphas"]
    assert paper["steering"]["target"] == {"model": "amberchat", "checkpoint": "main"}
    full = load_suite("amber-full")["models"]["amber"]["checkpoints"]
    assert [c["name"] for c in full] == [f"ckpt_{n:03d}" for n in range(360)]
    assert full[-1]["tokens"] == pytest.approx(1259.13e9, rel=1e-6)
    assert {c["name"]: c["tokens"] for c in full}["ckpt_179"] == {
        c["name"]: c["tokens"] for c in paper["models"]["amber"]["checkpoints"]
    }["ckpt_179"]


def dry_run(workdir: Path, *configfiles: Path, replace: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "all",
            "-n",
            "-q",
            "-s",
            str(SNAKEFILE),
            "-d",
            str(workdir),
            *(["--replace-workflow-config"] if replace else []),
            "--configfile",
            *map(str, configfiles),
            "--config",
            f"data_dir={DATASETS}",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


@pytest.mark.workflow
@pytest.mark.parametrize("name", [s for s in SUITES if s != "amber-full"])  # amber-full: ~40 s, see the README
def test_suite_configs_dry_run(name, tmp_path):
    result = dry_run(tmp_path, REPO / "configs" / f"{name}.yaml")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]


@pytest.mark.workflow
def test_paper_datasets_overlay_replaces_the_default_demo_dimensions(tmp_path):
    """The documented overlay: the default config.yaml (read first, from the working directory) and
    configs/paper-datasets.yaml over it; its `demo: null`s turn the demo dimensions into the CSV ones."""
    from trusttrace import config as tt_config

    if not hasattr(tt_config, "drop_null_overrides"):
        pytest.skip("trusttrace.config does not yet delete `key: null` overrides (drop_null_overrides)")
    (tmp_path / "config.yaml").write_text((REPO / "config.yaml").read_text())
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "all",
            "-n",
            "-s",
            str(SNAKEFILE),
            "-d",
            str(tmp_path),
            "--configfile",
            str(REPO / "configs" / "paper-datasets.yaml"),
            "--config",
            f"data_dir={DATASETS}",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    plan = result.stdout
    assert "rule demo_dataset" not in plan
    for csv in ("truthfulqa_train.csv", "confaide.csv", "toxigen.csv", "stereoset.csv", "sst2.csv"):
        assert f"input: {DATASETS / csv}" in plan


# ---- end to end on the tiny model -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    tiny = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    # The tiny model's settings, at its last checkpoint only (its training still runs from step 0): the cells of
    # one checkpoint x five dimensions x every layer keep the run to a couple of minutes.
    models = {name: {**spec, "checkpoints": spec["checkpoints"][-1:]} for name, spec in tiny["models"].items()}
    config = {
        "models": models,
        "data_dir": str(DATASETS),
        "dimensions": paper_dimensions(),
        "probe": tiny.get("probe", {}),
        "mi": tiny.get("mi", {}),
        "steering": {"enabled": False},
    }
    assert sorted(config["dimensions"]) == sorted(DIMENSIONS)
    workdir = tmp_path_factory.mktemp("real_data")
    model = next(iter(config["models"]))
    checkpoints = [c["name"] for c in config["models"][model]["checkpoints"]]
    targets = [
        f"results/{step}/{model}/{checkpoint}/{dimension}"
        for step in ("probe", "mi")
        for checkpoint in checkpoints
        for dimension in DIMENSIONS
    ]
    if aggregation_defined():
        targets.append("results/tables/metrics.parquet")
    run_workflow(workdir, config, "--cores", "2", *targets)
    return workdir, model, checkpoints


@pytest.mark.workflow
def test_subsampled_data_is_stratified_and_split(real_run):
    import pandas as pd

    workdir, _, _ = real_run
    for dimension in DIMENSIONS:
        data = pd.read_parquet(workdir / f"results/data/{dimension}.parquet")
        assert len(data) == MAX_SAMPLES
        assert set(data["label"]) == {0, 1} and data["statement"].str.len().min() > 0
        counts = data["label"].value_counts()
        assert counts.min() >= 0.3 * MAX_SAMPLES  # every file is roughly balanced, and so is its subsample
        assert set(data["split"]) == {"train", "test"}
        assert (data["split"] == "test").sum() == pytest.approx(0.2 * MAX_SAMPLES, abs=2)


@pytest.mark.workflow
def test_every_cell_is_present_and_sane(real_run):
    workdir, model, checkpoints = real_run
    informative = 0
    for checkpoint in checkpoints:
        for dimension in DIMENSIONS:
            for layer in LAYERS:
                probe = json.loads(
                    (workdir / f"results/probe/{model}/{checkpoint}/{dimension}/layer={layer}.json").read_text()
                )
                mi = json.loads(
                    (workdir / f"results/mi/{model}/{checkpoint}/{dimension}/layer={layer}.json").read_text()
                )
                for cell in (probe, mi):
                    assert (cell["model"], cell["checkpoint"], cell["dimension"], cell["layer"]) == (
                        model,
                        checkpoint,
                        dimension,
                        layer,
                    )
                if "degenerate" in probe:  # a layer with no information to probe says why instead
                    assert isinstance(probe["degenerate"], str) and probe["degenerate"]
                    continue
                informative += 1
                for key in (
                    "accuracy",
                    "accuracy_ci_low",
                    "accuracy_ci_high",
                    "mass_mean_accuracy",
                    "control_accuracy",
                ):
                    assert 0.0 <= probe[key] <= 1.0, (checkpoint, dimension, layer, key, probe[key])
                assert probe["accuracy_ci_low"] <= probe["accuracy"] <= probe["accuracy_ci_high"]
                assert probe["n_test"] == pytest.approx(0.2 * MAX_SAMPLES, abs=2)
                assert probe["n_train"] + probe["n_test"] == MAX_SAMPLES
                assert probe["v_information_bits"] <= probe["h_y_bits"] + 1e-9
                assert all(math.isfinite(v) for v in mi.values() if isinstance(v, float))
    # Layers 1..2 (block outputs) are never all degenerate on real text.
    assert informative >= len(checkpoints) * len(DIMENSIONS) * 2


@pytest.mark.workflow
def test_metrics_table_holds_every_cell(real_run):
    workdir, model, checkpoints = real_run
    if not aggregation_defined():
        pytest.skip("rules/aggregate.smk defines no metrics table yet")
    import pandas as pd

    table = pd.read_parquet(workdir / "results/tables/metrics.parquet")
    accuracy = table[(table["source"] == "probe") & (table["metric"] == "accuracy")]
    degenerate = pd.read_parquet(workdir / "results/tables/degenerate_cells.parquet")
    cells = {(c, d, l) for c in checkpoints for d in DIMENSIONS for l in LAYERS}
    found = set(zip(accuracy["checkpoint"], accuracy["dimension"], accuracy["layer"]))
    skipped = set(
        zip(
            degenerate.loc[degenerate["source"] == "probe", "checkpoint"],
            degenerate.loc[degenerate["source"] == "probe", "dimension"],
            degenerate.loc[degenerate["source"] == "probe", "layer"],
        )
    )
    assert found | skipped == cells and not found & skipped
    assert (accuracy["model"] == model).all()
    assert accuracy["value"].between(0, 1).all()
    assert (accuracy["ci_low"] <= accuracy["value"]).all() and (accuracy["value"] <= accuracy["ci_high"]).all()
    assert set(table.loc[table["source"] == "mi", "dimension"]) == set(DIMENSIONS)
