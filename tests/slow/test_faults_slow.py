"""Faults, the long scenarios: kill -9 in the middle of a pre-training segment, of the whole run or of the
pre-training job alone. The rerun trains the segment again from the previous checkpoint and redoes everything
downstream of it, so each costs a whole tiny run on top of the shared reference; they are marked ``slow`` (run
them with ``pytest -m slow``). The kill point is exact: the segment's job stops after its 10th of 60 steps
(trusttrace.io's test hook, event ``pretrain:<output dir>:step=10``) and is killed there."""

from __future__ import annotations

import os
import signal
import time

import pytest
from test_faults import (  # noqa: F401  (fixtures are found by name)
    CELLS,
    FIGURES,
    TABLES,
    TIMEOUT,
    assert_same_cells,
    copy_workdir,
    dry_run_jobs,
    job_processes,
    kill_group,
    output_of,
    planned,
    prefix,
    prepared,
    reference,
    report_figures,
    rerun_after_unlock,
    run,
    start,
    wait_for_hold,
)

pytestmark = [pytest.mark.workflow, pytest.mark.slow]
STEPS_BEFORE_KILL = 10
PRETRAIN_MIDWAY = rf"^pretrain:\S*checkpoints/step60:step={STEPS_BEFORE_KILL}$"
SEGMENT_FILES = ("model.safetensors", "optimizer.safetensors", "trainer_state.json")


def assert_same_segment(workdir, expected) -> None:
    """The step60 checkpoint (weights, optimizer state, trainer state) is byte-identical to the reference's."""
    for name in SEGMENT_FILES:
        path = "results/pretrain/tiny/checkpoints/step60/" + name
        assert (workdir / path).read_bytes() == (expected / path).read_bytes(), name


def assert_same_tables(workdir, expected) -> int:
    for path in TABLES:
        assert (workdir / path).read_bytes() == (expected / path).read_bytes(), path
    return len(TABLES)


def assert_segment_killed_midway(workdir):
    """Nothing of the segment's outputs is there (save_pretrained runs after the last step), and the rerun plans the
    segment again (and only it: step0 stays)."""
    checkpoint = workdir / "results" / "pretrain" / "tiny" / "checkpoints" / "step60"
    assert not (checkpoint / "trainer_state.json").is_file()
    assert not (workdir / "results" / "pretrain" / "tiny" / "losses" / "step60.tsv").is_file()
    jobs, text = dry_run_jobs(workdir)
    assert planned(jobs, "pretrain_checkpoint", "step60") is not None, text[-3000:]
    assert planned(jobs, "pretrain_checkpoint", "step0") is None


def test_killed_in_pretraining_reruns_the_segment_to_identical_weights_and_cells(prefix, reference, tmp_path):
    """(b) kill -9 of the whole run while the step0 -> step60 segment is training."""
    workdir = copy_workdir(prefix, tmp_path / "b")
    began = time.monotonic()
    process = start(workdir, *CELLS, name="first", hold=PRETRAIN_MIDWAY)
    wait_for_hold(process, workdir, "first")
    kill_group(process)
    kill_point = time.monotonic() - began
    assert_segment_killed_midway(workdir)

    _, seconds = rerun_after_unlock(workdir)
    compared = assert_same_cells(workdir, reference)
    assert_same_segment(workdir, reference)
    FIGURES["b: kill -9 Snakemake in pre-training"] = {
        "killed": f"pretrain step0->step60 after {STEPS_BEFORE_KILL}/60 steps, {kill_point:.1f} s after start",
        "rerun (s)": round(seconds, 1),
        "cell files byte-equal": compared,
        "weights byte-equal": True,
    }


def test_one_killed_pretraining_job_reruns_to_identical_checkpoint_and_tables(prefix, reference, tmp_path):
    """kill -9 of the pre-training job's process only (Snakemake lives on, reports it and exits); the same command
    then gives the reference's checkpoint, cells, tables and summary byte for byte."""
    workdir = copy_workdir(prefix, tmp_path / "one-pretrain-job")
    targets = [*CELLS, *TABLES]
    process = start(workdir, *targets, name="first", hold=PRETRAIN_MIDWAY)
    victim, _ = wait_for_hold(process, workdir, "first")
    assert victim in job_processes(process, "pretrain_checkpoint")
    os.kill(victim, signal.SIGKILL)
    returncode = process.wait(timeout=TIMEOUT)
    text = output_of(workdir, "first")
    assert returncode != 0 and "Error in rule pretrain_checkpoint" in text, text[-3000:]
    assert not list((workdir / ".snakemake" / "locks").glob("*"))  # Snakemake itself exited cleanly
    assert_segment_killed_midway(workdir)

    _, _, seconds = run(workdir, *targets, name="rerun")
    assert_same_segment(workdir, reference)
    compared = assert_same_cells(workdir, reference)
    tables = assert_same_tables(workdir, reference)
    FIGURES["kill -9 one pre-training job"] = {
        "killed": f"pretrain step0->step60 (pid {victim}) after {STEPS_BEFORE_KILL}/60 steps",
        "rerun (s)": round(seconds, 1),
        "cell files byte-equal": compared,
        "tables + summary byte-equal": tables,
    }
