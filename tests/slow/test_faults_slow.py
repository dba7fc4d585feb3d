"""Faults, the long scenario: kill -9 of the whole run in the middle of a pre-training segment. The rerun trains
the segment again from the previous checkpoint and redoes everything downstream of it, so this costs a whole
tiny run on top of the shared reference; it is marked ``slow`` (run it with ``pytest -m slow``)."""

from __future__ import annotations

import time

import pytest

from test_faults import (  # noqa: F401  (fixtures are found by name)
    CELLS, FIGURES, assert_same_cells, copy_workdir, dry_run_jobs, kill_group, planned, prefix, prepared, reference,
    report_figures, rerun_after_unlock, start, wait_until,
)

pytestmark = [pytest.mark.workflow, pytest.mark.slow]
STEPS_BEFORE_KILL = 10


def test_killed_in_pretraining_reruns_the_segment_to_identical_weights_and_cells(prefix, reference, tmp_path):
    """(b) kill -9 of the whole run while the step0 -> step60 segment is training."""
    workdir = copy_workdir(prefix, tmp_path / "b")
    began = time.monotonic()
    process = start(workdir, *CELLS, name="first")
    log = workdir / "logs" / "pretrain" / "tiny" / "step60.log"
    wait_until(process, lambda: log.is_file() and log.read_text().count("loss=") >= STEPS_BEFORE_KILL,
               "the step60 segment to train")
    kill_group(process)
    kill_point = time.monotonic() - began
    steps_done = log.read_text().count("loss=")
    assert steps_done < 60

    # save_pretrained runs after the last step: nothing of the segment's outputs is there, and the rerun plans the
    # segment (and only it: step0 stays) again.
    checkpoint = workdir / "results" / "pretrain" / "tiny" / "checkpoints" / "step60"
    assert not (checkpoint / "trainer_state.json").is_file()
    assert not (workdir / "results" / "pretrain" / "tiny" / "losses" / "step60.tsv").is_file()
    jobs, text = dry_run_jobs(workdir)
    assert planned(jobs, "pretrain_checkpoint", "step60") is not None, text[-3000:]
    assert planned(jobs, "pretrain_checkpoint", "step0") is None

    _, seconds = rerun_after_unlock(workdir)
    compared = assert_same_cells(workdir, reference)
    for name in ("model.safetensors", "optimizer.safetensors"):
        assert (checkpoint / name).read_bytes() == (
            reference / "results" / "pretrain" / "tiny" / "checkpoints" / "step60" / name).read_bytes(), name
    FIGURES["b: kill -9 Snakemake in pre-training"] = {
        "killed": f"pretrain step0->step60 after {steps_done}/60 steps, {kill_point:.1f} s after start",
        "rerun (s)": round(seconds, 1), "cell files byte-equal": compared, "weights byte-equal": True,
    }
