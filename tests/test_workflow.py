"""The workflow end to end on a tiny config: every cell's outputs, shards equal to the model's own states,
incremental planning, and failures that leave finished work alone."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import REPO, job_stats, run_workflow, tiny_workflow

pytestmark = pytest.mark.workflow
TINY = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())


def run_snakemake(workdir: Path, config: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run_workflow(workdir, config, *args, check=check)


planned_jobs = job_stats


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    return tiny_workflow(tmp_path_factory)


def test_every_cell_is_written(finished_run):
    results = finished_run / "results"
    for checkpoint in ("step0", "step8"):
        shards = results / "activations" / "tiny" / checkpoint / "reliability"
        assert sorted(p.name for p in shards.glob("layer=*.parquet")) == [f"layer={l}.parquet" for l in range(3)]
        for step in ("probe", "mi"):
            cells = [
                json.loads((results / step / "tiny" / checkpoint / "reliability" / f"layer={l}.json").read_text())
                for l in range(3)
            ]
            assert [c["layer"] for c in cells] == [0, 1, 2]
            assert all(
                c["model"] == "tiny" and c["checkpoint"] == checkpoint and c["dimension"] == "reliability"
                for c in cells
            )
        probe = json.loads((results / "probe" / "tiny" / checkpoint / "reliability" / "layer=2.json").read_text())
        assert 0.0 <= probe["accuracy_ci_low"] <= probe["accuracy"] <= probe["accuracy_ci_high"] <= 1.0
        # 60 rows: 12 test, 12 validation, 36 train (the probe may refit on train + validation after choosing)
        assert probe["n_test"] == 12 and probe["n_train"] in (36, 48) and probe["step"] == int(checkpoint[4:])
        # Layer 0 is the embedding of the shared final '.': constant, recorded as degenerate, not a failure.
        assert "degenerate" in json.loads(
            (results / "probe" / "tiny" / checkpoint / "reliability" / "layer=0.json").read_text()
        )
        steering = json.loads((results / "steering" / "tiny" / checkpoint / "reliability" / "layer=1.json").read_text())
        assert [r["alpha"] for r in steering["by_alpha"]] == [-1.0, 0.0, 1.0]
        assert steering["target_checkpoint"] == "step8"
        assert (results / "steering_vectors" / "tiny" / checkpoint / "reliability" / "layer=1.safetensors").is_file()
    for directory in ("logs", "results/benchmarks"):
        assert any((finished_run / directory).rglob("*")), directory


def test_every_job_logs_where_its_time_went(finished_run):
    """Each job's log ends with its timing line (process start to main, model load, compute), which
    benchmarks/bench_overhead.py reads; model jobs spend time loading, the others none."""
    from trusttrace.io import parse_job_timing

    for rule in ("extract_activations", "steering_effect", "probe", "mutual_information", "steering_vectors"):
        logs = sorted((finished_run / "logs" / rule).rglob("*.log"))
        assert logs, rule
        for log in logs:
            timings = [t for t in map(parse_job_timing, log.read_text().splitlines()) if t]
            assert len(timings) == 1, log
            timing = timings[0]
            assert 0.05 < timing["before_main"] < 120 and timing["compute"] > 0, (log, timing)
            if rule in ("extract_activations", "steering_effect"):
                assert timing["load"] > 0.01, (log, timing)
            else:
                assert timing["load"] == 0.0, (log, timing)
    # One steering job per source checkpoint, covering every dimension.
    assert sorted(p.name for p in (finished_run / "logs" / "steering_effect" / "tiny").iterdir()) == [
        "step0.log",
        "step8.log",
    ]


def test_shards_equal_the_models_own_hidden_states(finished_run):
    import pandas as pd
    import torch
    from trusttrace.models import decoder_blocks, load_model_and_tokenizer
    from trusttrace.shards import read_shard

    model, tokenizer = load_model_and_tokenizer(str(finished_run / "results/pretrain/tiny/checkpoints/step8"))
    shard_dir = finished_run / "results/activations/tiny/step8/reliability"
    data = pd.read_parquet(finished_run / "results/data/reliability.parquet").set_index("row_id")
    shards = {layer: read_shard(shard_dir, layer) for layer in (1, 2)}
    for position in (0, 7, 31):
        row_id = shards[1]["row_id"][position]
        ids = tokenizer(data.loc[row_id, "statement"], add_special_tokens=False, return_tensors="pt")
        captured = {}
        handle = decoder_blocks(model)[-1].register_forward_hook(
            lambda m, a, o, captured=captured: captured.setdefault("h", o)
        )
        with torch.no_grad():
            states = model(**ids, output_hidden_states=True).hidden_states
        handle.remove()
        np.testing.assert_allclose(shards[1]["activation"][position], states[1][0, -1].numpy(), atol=1e-4)
        np.testing.assert_allclose(shards[2]["activation"][position], captured["h"][0, -1].numpy(), atol=1e-4)
        assert shards[1]["label"][position] == data.loc[row_id, "label"]


def test_rerun_does_nothing(finished_run):
    result = run_snakemake(finished_run, TINY, "--cores", "2", "--dry-run")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_adding_a_checkpoint_plans_only_its_jobs(finished_run):
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["models"]["tiny"]["checkpoints"].append({"name": "step12", "step": 12})
    config["steering"]["target"] = {"model": "tiny", "checkpoint": "step8"}
    jobs = planned_jobs(run_snakemake(finished_run, config, "--dry-run"))
    aggregates = {
        rule: n
        for rule, n in jobs.items()
        if rule
        not in {
            "pretrain_checkpoint",
            "resolve_checkpoint",
            "verify_checkpoint",
            "extract_activations",
            "probe",
            "mutual_information",
            "steering_vectors",
            "steering_effect",
        }
    }
    assert {rule: n for rule, n in jobs.items() if rule not in aggregates} == {
        "pretrain_checkpoint": 1,
        "resolve_checkpoint": 1,
        "verify_checkpoint": 1,
        "extract_activations": 1,
        "probe": 1,
        "mutual_information": 1,
        "steering_vectors": 1,
        "steering_effect": 1,
    }
    assert set(aggregates) >= {"all", "check_checkpoint_integrity"}


def test_the_duplicate_weights_gate_guards_every_job_and_reruns_no_cell(finished_run):
    """Every extraction and steering job waits for its checkpoint's gate (verify_checkpoint), each gate compares its
    checkpoint with the ones before it only, and redoing the gates (here: duplicate_weights: warn) plans no cell."""
    gates = {p.stem: json.loads(p.read_text()) for p in (finished_run / "results/models/tiny").glob("*.verified")}
    assert {name: gate["compared_with"] for name, gate in gates.items()} == {"step0": [], "step8": ["step0"]}
    assert all(gate["duplicates"] == [] and gate["duplicate_check"] == ["tensors"] for gate in gates.values())
    record = json.loads((finished_run / "results/models/tiny/step8.json").read_text())
    assert set(record["weight_file_tensors_sha256"]) == {"model.safetensors"}
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["models"]["tiny"]["duplicate_weights"] = "warn"
    jobs = planned_jobs(run_snakemake(finished_run, config, "--dry-run"))
    assert jobs == {"verify_checkpoint": 2, "check_checkpoint_integrity": 1, "all": 1}, jobs
    result = run_snakemake(finished_run, TINY, "--forceall", "--rulegraph")
    edges = set(re.findall(r"(\d+) -> (\d+)", result.stdout))
    names = dict(re.findall(r'^\s*(\d+)\[label = "(\w+)"', result.stdout, re.M))
    edges = {(names[a], names[b]) for a, b in edges}
    assert {("verify_checkpoint", "extract_activations"), ("verify_checkpoint", "steering_effect")} <= edges


def test_adding_a_dimension_plans_only_its_jobs(finished_run):
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["dimensions"]["toxicity"] = {"demo": "toxicity", "demo_size": 60, "trustworthy_label": 0}
    jobs = planned_jobs(run_snakemake(finished_run, config, "--dry-run"))
    assert jobs["extract_activations"] == 2 and jobs["probe"] == 2 and jobs["mutual_information"] == 2
    # The new dimension's vectors; every steering job reruns (one per source checkpoint, all dimensions in it).
    assert jobs["steering_vectors"] == 2 and jobs["steering_effect"] == 2
    assert "pretrain_checkpoint" not in jobs and "resolve_checkpoint" not in jobs
    assert jobs["demo_dataset"] == 1 and jobs["prepare_dimension"] == 1


def snapshot(directory: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in directory.rglob("*") if p.is_file()}


def test_bad_input_fails_before_any_job_and_touches_nothing(finished_run, tmp_path):
    before = snapshot(finished_run / "results")
    one_class = tmp_path / "one_class.csv"
    one_class.write_text("statement,label\n" + "a statement.,1\n" * 20)
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["dimensions"]["bad"] = {"csv": str(one_class), "trustworthy_label": 1}
    result = run_snakemake(finished_run, config, "--cores", "2", check=False)
    assert result.returncode != 0
    assert "config error at dimensions.bad" in result.stderr and "only one class" in result.stderr
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["layers"] = [0, 5]
    result = run_snakemake(finished_run, config, "--cores", "2", check=False)
    assert result.returncode != 0 and "layers: [5] out of range for models.tiny" in result.stderr
    assert snapshot(finished_run / "results") == before


def test_failed_job_keeps_other_outputs(finished_run, tmp_path):
    """A corrupt shard fails its cells' jobs with a message naming the file; --keep-going finishes the rest."""
    workdir = tmp_path / "copy"
    shutil.copytree(finished_run, workdir, symlinks=True)
    shard = workdir / "results/activations/tiny/step0/reliability/layer=1.parquet"
    shard.write_bytes(shard.read_bytes()[:-100])
    keep = workdir / "results/probe/tiny/step8/reliability/layer=2.json"
    kept = keep.read_bytes()
    result = run_snakemake(
        workdir, TINY, "--cores", "2", "--keep-going", "--forcerun", "probe", "mutual_information", check=False
    )
    assert result.returncode != 0, result.stderr[-2000:]
    log = (workdir / "logs/probe/tiny/step0/reliability.log").read_text()
    assert "corrupt" in log, result.stderr[-3000:]
    assert "layer=1.parquet: corrupt shard" in log and "snakemake --forcerun extract_activations" in log
    assert keep.read_bytes() == kept  # rerun by --forcerun with the same inputs: identical bytes
    assert (workdir / "results/mi/tiny/step8/reliability/layer=2.json").is_file()


def test_same_config_gives_byte_identical_results(finished_run, tmp_path):
    """A second run from scratch: identical checkpoints, shards' contents, metrics files, and what users read: the
    tables (results/tables/*.parquet) and results/summary.md."""
    again = tmp_path / "again"
    again.mkdir()
    run_snakemake(again, TINY, "--cores", "2")
    compared = 0
    for pattern in (
        "results/pretrain/tiny/checkpoints/*/*.safetensors",
        "results/probe/**/*.json",
        "results/mi/**/*.json",
        "results/steering/**/*.json",
        "results/steering_vectors/**/*.safetensors",
        "results/models/tiny/*.json",
        "results/tables/*.parquet",
        "results/summary.md",
    ):
        for first in sorted(finished_run.glob(pattern)):
            second = again / first.relative_to(finished_run)
            assert second.read_bytes() == first.read_bytes(), first.relative_to(finished_run)
            compared += 1
    assert compared >= 2 * 3 * 3 + 4
    tables = sorted(p.name for p in (again / "results/tables").glob("*.parquet"))
    assert {"metrics.parquet", "phases.parquet", "degenerate_cells.parquet", "pretrain_loss.parquet"} <= set(tables)
    probe = json.loads((again / "results/probe/tiny/step8/reliability/layer=1.json").read_text())
    assert probe["seed"] == 0 and probe["split_seed"] == 0
