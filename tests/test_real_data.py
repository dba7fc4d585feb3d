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
from helpers import REPO, SNAKEFILE, run_workflow
from helpers import SHARED_DATASETS as DATASETS

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
        overlay = {"group_by": "exact", "on_conflict": "error", **overlay}  # the schema's defaults
        keys = ("csv", "trustworthy_label", "group_by", "on_conflict")
        assert [spec[k] for k in keys] == [overlay[k] for k in keys]
    for spec in config["models"].values():
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
    # The paper steers model.model.layers[16] (0-based): the output of the 17th block, TrustTrace's hidden state 17.
    assert paper["steering"]["source_checkpoints"] == ["ckpt_179"] and paper["steering"]["layers"] == [17]
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
    targets.append("results/tables/metrics.parquet")
    run_workflow(workdir, config, "--cores", "2", *targets)
    return workdir, model, checkpoints


# ---- groups, conflicts and labels on the real files ---------------------------------------------------------------


def prepared(dimension: str, max_samples: int | None = None, **overrides):
    """One dimension of configs/paper-datasets.yaml prepared in full (or subsampled), as the workflow does."""
    from trusttrace.data import prepare_dimension_with_report

    spec = {"group_by": "exact", "on_conflict": "error", **paper_dimensions()[dimension], **overrides}
    return prepare_dimension_with_report(
        DATASETS / spec["csv"],
        max_samples=max_samples,
        group_by=spec["group_by"],
        on_conflict=spec["on_conflict"],
        test_fraction=0.2,
        validation_fraction=0.2,
        seed=0,
    )


def test_no_group_crosses_a_split_and_conflicts_are_dropped():
    """The paper's data as the configs prepare it: measured duplicates, conflicts, groups (see paper-datasets.yaml)."""
    expected = {  # dimension: (conflicting statements, rows dropped, rows kept, groups)
        "reliability": (0, 0, 2263, 410),  # TruthfulQA: 410 questions
        "privacy": (3, 9, 2337, 2266),
        "toxicity": (6, 12, 6502, 6432),
        "fairness": (0, 0, 1952, 1952),
        "robustness": (14, 28, 3614, 1807),  # SST-2: clean + perturbed pairs
    }
    for dimension, (conflicts, dropped, rows, groups) in expected.items():
        for max_samples in (None, MAX_SAMPLES):
            data, report = prepared(dimension, max_samples=max_samples)
            assert (data.groupby("group")["split"].nunique() == 1).all(), dimension
            assert set(data["split"]) == {"train", "validation", "test"}
            if max_samples is None:
                assert (report["conflicting_statements"], report["conflict_rows_dropped"]) == (conflicts, dropped)
                assert (report["rows"], report["n_groups"]) == (rows, groups), dimension
                for name, fraction in (("test", 0.2), ("validation", 0.2)):
                    assert sum(report["counts"][name].values()) == pytest.approx(fraction * rows, abs=6)
    # Without grouping, the old leaks: SST-2 twins and TruthfulQA questions on both sides of the split.
    sst2, _ = prepared("robustness", group_by="none")
    twins = sst2.assign(key=sst2["statement"].str.casefold().str.split().str.join(" ")).groupby("key")["split"]
    assert (twins.nunique() > 1).sum() > 500
    truthfulqa, _ = prepared("reliability", group_by="none")
    questions = truthfulqa.groupby(truthfulqa["statement"].str.split("\t").str[0])["split"].nunique()
    assert (questions > 1).sum() > 200


def test_grouped_real_splits_keep_twins_and_questions_together():
    sst2, _ = prepared("robustness")
    key = sst2["statement"].str.casefold().str.split().str.join(" ")
    assert (sst2.groupby(key)["split"].nunique() == 1).all() and (sst2.groupby(key).size() == 2).all()
    truthfulqa, _ = prepared("reliability")
    question = truthfulqa["statement"].str.split("\t").str[0]
    assert question.str.startswith("Q: ").all() and question.nunique() == 410
    assert (truthfulqa.groupby(question)["split"].nunique() == 1).all()


def test_sst2_label_is_the_perturbation_not_the_sentiment():
    """0 = the clean lower-case sentence, 1 = its randomly capitalised copy; trustworthy = clean (0)."""
    data, _ = prepared("robustness")
    clean, perturbed = data[data["label"] == 0]["statement"], data[data["label"] == 1]["statement"]
    assert (clean == clean.str.lower()).mean() > 0.99 and (perturbed != perturbed.str.lower()).all()
    assert paper_dimensions()["robustness"]["trustworthy_label"] == 0


def test_conflicts_without_on_conflict_drop_are_named():
    from trusttrace.errors import TrustTraceError

    with pytest.raises(TrustTraceError, match=r"confaide\.csv: 3 statements occur with both labels \(data rows \d+"):
        prepared("privacy", on_conflict="error")


@pytest.mark.workflow
def test_subsampled_data_is_stratified_and_split(real_run):
    import pandas as pd

    workdir, _, _ = real_run
    for dimension in DIMENSIONS:
        data = pd.read_parquet(workdir / f"results/data/{dimension}.parquet")
        report = json.loads((workdir / f"results/data/{dimension}.json").read_text())
        largest = data.groupby("group").size().max()  # whole groups: within half a group of the targets
        assert len(data) == pytest.approx(MAX_SAMPLES, abs=largest / 2 + 1)
        assert set(data["label"]) == {0, 1} and data["statement"].str.len().min() > 0
        counts = data["label"].value_counts()
        assert counts.min() >= 0.3 * MAX_SAMPLES  # every file is roughly balanced, and so is its subsample
        assert set(data["split"]) == {"train", "validation", "test"}
        assert (data.groupby("group")["split"].nunique() == 1).all()
        for name in ("test", "validation"):
            assert (data["split"] == name).sum() == pytest.approx(0.2 * len(data), abs=largest / 2 + 1)
            assert sum(report["counts"][name].values()) == (data["split"] == name).sum()


@pytest.mark.workflow
def test_every_cell_is_present_and_sane(real_run):
    import pandas as pd

    workdir, model, checkpoints = real_run
    splits = {
        d: pd.read_parquet(workdir / f"results/data/{d}.parquet")["split"].value_counts().to_dict() for d in DIMENSIONS
    }
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
                    "permuted_label_accuracy",
                    "validation_accuracy",
                ):
                    assert 0.0 <= probe[key] <= 1.0, (checkpoint, dimension, layer, key, probe[key])
                assert probe["accuracy_ci_low"] <= probe["accuracy"] <= probe["accuracy_ci_high"]
                split_sizes = splits[dimension]
                assert probe["n_test"] == split_sizes["test"]
                assert probe["n_train"] == split_sizes["train"] and probe["n_validation"] == split_sizes["validation"]
                assert probe["v_information_bits"] <= probe["h_y_bits"] + 1e-9
                assert all(math.isfinite(v) for v in mi.values() if isinstance(v, float))
    # Layers 1..2 (block outputs) are never all degenerate on real text.
    assert informative >= len(checkpoints) * len(DIMENSIONS) * 2


@pytest.mark.workflow
def test_metrics_table_holds_every_cell(real_run):
    workdir, model, checkpoints = real_run
    import pandas as pd

    table = pd.read_parquet(workdir / "results/tables/metrics.parquet")
    accuracy = table[(table["source"] == "probe") & (table["metric"] == "accuracy")]
    degenerate = pd.read_parquet(workdir / "results/tables/degenerate_cells.parquet")
    cells = {(c, d, l) for c in checkpoints for d in DIMENSIONS for l in LAYERS}
    found = set(zip(accuracy["checkpoint"], accuracy["dimension"], accuracy["layer"], strict=False))
    skipped = set(
        zip(
            degenerate.loc[degenerate["source"] == "probe", "checkpoint"],
            degenerate.loc[degenerate["source"] == "probe", "dimension"],
            degenerate.loc[degenerate["source"] == "probe", "layer"],
            strict=False,
        )
    )
    assert found | skipped == cells and not found & skipped
    assert (accuracy["model"] == model).all()
    assert accuracy["value"].between(0, 1).all()
    assert (accuracy["ci_low"] <= accuracy["value"]).all() and (accuracy["value"] <= accuracy["ci_high"]).all()
    assert set(table.loc[table["source"] == "mi", "dimension"]) == set(DIMENSIONS)
