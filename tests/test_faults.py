"""Faults: a run killed with SIGKILL (the whole Snakemake process group, or one job's process) in the middle of
extraction or a cell job, then run again with the same command, gives the same per-cell metrics, byte for byte,
as a run that was never interrupted; a failing job leaves every other output alone. (A kill in the middle of
pre-training, which reruns everything downstream of it, is tests/slow/test_faults_slow.py.)

What protects half-written outputs, shown by assertions below:
  * Snakemake marks a job's outputs incomplete when it starts and unmarks them when it finishes; a directory left
    by a killed job is listed as incomplete, and the profile's ``rerun-incomplete`` deletes and redoes it.
  * Snakemake deletes the outputs of a job that failed (here: killed alone) before it exits.
  * Inside a job, every shard and every cell JSON is written to a hidden ``.tmp`` name and renamed, and an
    extraction's ``manifest.json`` comes last: a directory without it is refused by ``read_shard``.
  * A kill -9 of Snakemake itself leaves its lock behind: the same command then stops with a LockException that
    names ``--unlock``; after ``snakemake --unlock`` the same command completes.

Every kill point is exact: the killed run sets TRUSTTRACE_TEST_HOLD_AT (trusttrace.io's test hook), so the job to
be killed stops at that point and says so (a ``reached-<pid>`` file) before the test kills it; no kill races the
job it aims at.

The scenarios share one uninterrupted reference run of the same config (module fixture) and start from copies of
the same pre-built prefix, so the whole file costs about four tiny runs.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import REPO
from trusttrace.errors import TrustTraceError
from trusttrace.io import TEST_HOLD_AT, TEST_HOLD_DIR
from trusttrace.shards import read_shard

pytestmark = pytest.mark.workflow

FAULTS = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
# The tiny config with a second checkpoint whose segment is long enough (60 steps) to be killed mid-way; steering
# from the last checkpoint only (it adds nothing to what is tested here and costs a model load per cell).
FAULTS["models"]["tiny"]["checkpoints"] = [{"name": "step0", "step": 0}, {"name": "step60", "step": 60}]
FAULTS["steering"]["source_checkpoints"] = ["step60"]
CHECKPOINTS = ("step0", "step60")
CELLS = [f"results/{step}/tiny/{checkpoint}/reliability" for step in ("probe", "mi") for checkpoint in CHECKPOINTS] + [
    "results/steering/tiny/step60/reliability"
]
PREFIX = [
    "results/data/reliability.parquet",
    "results/pretrain/tiny/tokenizer",
    "results/pretrain/tiny/checkpoints/step0",
]
PREPARED = [f"results/models/tiny/{checkpoint}.json" for checkpoint in CHECKPOINTS]
TABLES = [
    "results/tables/metrics.parquet",
    "results/tables/phases.parquet",
    "results/tables/pretrain_loss.parquet",
    "results/summary.md",
]
# Kill points (regular expressions over trusttrace.io's test-hook events).
EXTRACTION_STARTS = r"^log:\S*extract_activations/\S+\.log:.*extract:"  # the forward passes' progress bar, 0 rows
PROBE_HALFWAY = r"^write:\S*results/probe/tiny/[^/]+/reliability/layer=1\.json$"  # layer 0 written, layer 1 not
TIMEOUT = 900
FIGURES: dict[str, dict] = {}


def command(workdir: Path, *args: str) -> list[str]:
    """The one command every scenario runs (and runs again): the Snakefile of this repo, a working directory
    elsewhere, so that the workflow profile is the one found next to the Snakefile (profiles/default)."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "--configfile",
        str(workdir / "config.yaml"),
        "-d",
        str(workdir),
        "--cores",
        "2",
        *args,
    ]


def start(workdir: Path, *args: str, name: str, hold: str | None = None) -> subprocess.Popen:
    """Start the command; with ``hold``, the first job event matching it stops its job there (see wait_for_hold)."""
    (workdir / "config.yaml").write_text(yaml.safe_dump(FAULTS))
    env = {key: value for key, value in os.environ.items() if key not in (TEST_HOLD_AT, TEST_HOLD_DIR)}
    if hold is not None:
        holds = workdir / "holds" / name
        holds.mkdir(parents=True)
        env |= {TEST_HOLD_AT: hold, TEST_HOLD_DIR: str(holds)}
    return subprocess.Popen(
        command(workdir, *args),
        cwd=workdir,
        start_new_session=True,
        stdout=open(workdir / f"{name}.out", "w"),
        stderr=subprocess.STDOUT,
        env={**env, "PYTHONHASHSEED": "0"},
    )


def wait_for_hold(process: subprocess.Popen, workdir: Path, name: str) -> tuple[int, str]:
    """(pid, event) of the job of run ``name`` that stopped at its kill point; it waits there to be killed."""
    holds = workdir / "holds" / name
    wait_until(process, lambda: any(holds.glob("reached-*")), f"a job of run {name!r} to reach its kill point")
    reached = sorted(holds.glob("reached-*"))[0]
    return int(reached.name.removeprefix("reached-")), reached.read_text()


def held_log(event: str) -> Path:
    """The log file named by a ``log:<path>:<text>`` event."""
    return Path(re.match(r"^log:(\S+?\.log):", event).group(1))


def output_of(workdir: Path, name: str) -> str:
    return (workdir / f"{name}.out").read_text()


def run(workdir: Path, *args: str, name: str, check: bool = True) -> tuple[int, str, float]:
    began = time.monotonic()
    process = start(workdir, *args, name=name)
    returncode = process.wait(timeout=TIMEOUT)
    text = output_of(workdir, name)
    if check:
        assert returncode == 0, f"snakemake {' '.join(args)} failed:\n{text[-4000:]}"
    return returncode, text, time.monotonic() - began


def wait_until(process: subprocess.Popen, condition, what: str, timeout: float = TIMEOUT) -> float:
    began = time.monotonic()
    while not condition():
        assert process.poll() is None, f"snakemake ended before {what}"
        assert time.monotonic() - began < timeout, f"timed out waiting for {what}"
        time.sleep(0.01)
    return time.monotonic() - began


def group_members(pgid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every live process in a process group, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append((int(entry.name), cmdline))
    return members


def job_processes(process: subprocess.Popen, rule: str) -> list[int]:
    """The Python processes running a rule's script (.snakemake/scripts/tmp*.<rule>.py) under this Snakemake."""
    return [
        pid for pid, cmdline in group_members(process.pid) if re.search(rf"\.snakemake/scripts/\S*{rule}\.py", cmdline)
    ]


def kill_group(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    deadline = time.monotonic() + 10
    while group_members(process.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not group_members(process.pid), "processes of the killed run are still alive"


def dry_run_jobs(workdir: Path, *args: str, name: str = "dry") -> tuple[dict[str, list[dict]], str]:
    """The jobs a dry run plans, as {rule: [{'wildcards': ..., 'reason': ...}]} (and the raw output)."""
    returncode, text, _ = run(workdir, *CELLS, "--dry-run", *args, name=name, check=False)
    jobs: dict[str, list[dict]] = {}
    for block in re.split(r"^(?:local)?rule ", text, flags=re.M)[1:]:
        rule = block.split(":", 1)[0]
        fields = dict(re.findall(r"^    (\w+): (.*)$", block, re.M))
        jobs.setdefault(rule, []).append(fields)
    assert returncode == 0 or args, text[-3000:]
    return jobs, text


def planned(jobs: dict[str, list[dict]], rule: str, checkpoint: str) -> dict | None:
    pattern = re.compile(rf"\bcheckpoint={checkpoint}(,|$)")
    return next((job for job in jobs.get(rule, []) if pattern.search(job.get("wildcards", ""))), None)


def cell_files(workdir: Path) -> dict[str, bytes]:
    """Every per-cell metrics file (probe, MI, steering) by path relative to the working directory."""
    return {
        str(p.relative_to(workdir)): p.read_bytes()
        for step in ("probe", "mi", "steering")
        for p in sorted((workdir / "results" / step).rglob("*.json"))
    }


def assert_same_cells(workdir: Path, reference: Path) -> int:
    expected, found = cell_files(reference), cell_files(workdir)
    assert sorted(found) == sorted(expected)
    different = [path for path in expected if found[path] != expected[path]]
    assert not different, f"differ from the uninterrupted run: {different}"
    return len(expected)


def copy_workdir(source: Path, destination: Path) -> Path:
    shutil.copytree(source, destination, symlinks=True)
    for stale in destination.glob("*.out"):
        stale.unlink()
    return destination


def rerun_after_unlock(workdir: Path) -> tuple[str, float]:
    """The same command after a kill -9 of Snakemake: refused because of the lock it left, naming --unlock
    (and changing nothing); then ``--unlock`` and the same command again, which completes."""
    before = {str(p): p.stat().st_mtime_ns for p in (workdir / "results").rglob("*")}
    returncode, text, _ = run(workdir, *CELLS, name="locked", check=False)
    assert returncode != 0 and "LockException" in text and "--unlock" in text, text[-3000:]
    assert {str(p): p.stat().st_mtime_ns for p in (workdir / "results").rglob("*")} == before
    run(workdir, *CELLS, "--unlock", name="unlock")
    _, text, seconds = run(workdir, *CELLS, name="rerun")
    return text, seconds


@pytest.fixture(scope="module")
def prefix(tmp_path_factory) -> Path:
    """Data, tokenizer and the step0 checkpoint: what every scenario starts from."""
    workdir = tmp_path_factory.mktemp("faults") / "prefix"
    workdir.mkdir()
    run(workdir, *PREFIX, name="prefix")
    return workdir


@pytest.fixture(scope="module")
def prepared(prefix) -> Path:
    """The prefix plus the step60 segment and both checkpoints resolved: extraction is the next job."""
    workdir = copy_workdir(prefix, prefix.parent / "prepared")
    run(workdir, *PREPARED, name="prepared")
    return workdir


@pytest.fixture(scope="module")
def reference(prepared) -> Path:
    """The uninterrupted run every scenario is compared with."""
    workdir = copy_workdir(prepared, prepared.parent / "reference")
    _, text, seconds = run(workdir, *CELLS, name="reference")
    assert f"Using workflow specific profile {REPO}/profiles/default" in text
    _, _, table_seconds = run(workdir, *TABLES, name="reference-tables")
    FIGURES["reference"] = {"cells run (s)": round(seconds, 1), "tables run (s)": round(table_seconds, 1)}
    return workdir


@pytest.fixture(scope="module", autouse=True)
def report_figures():
    yield
    for scenario, figures in FIGURES.items():
        print(f"\n[faults] {scenario}: {figures}", file=sys.stderr)


def test_killed_in_extraction_then_in_a_cell_job_reruns_to_identical_cells(prepared, reference, tmp_path):
    """(a) kill -9 of the whole run while an extraction job is in its forward passes; rerun; kill -9 again while a
    probe job has written some of its layers; rerun to the end."""
    workdir = copy_workdir(prepared, tmp_path / "a")
    began = time.monotonic()
    process = start(workdir, *CELLS, name="first", hold=EXTRACTION_STARTS)
    pid, event = wait_for_hold(process, workdir, "first")
    killed = held_log(event).parent.name
    assert pid in job_processes(process, "extract_activations")
    kill_group(process)
    kill_point = time.monotonic() - began

    # The killed extraction wrote no manifest: its directory is absent or refused; the rerun plans it again.
    shards = workdir / "results" / "activations" / "tiny" / killed / "reliability"
    assert not (shards / "manifest.json").is_file()
    left = f"{len(list(shards.glob('layer=*.parquet')))} shards, no manifest" if shards.is_dir() else "no output yet"
    if shards.is_dir():
        with pytest.raises(TrustTraceError, match="missing; the extraction did not finish"):
            read_shard(shards, 1)
    jobs, text = dry_run_jobs(workdir)
    assert "Directory cannot be locked" in text  # the killed run's lock is still there
    assert planned(jobs, "extract_activations", killed) is not None, text[-3000:]
    assert planned(jobs, "pretrain_checkpoint", "step60") is None and "resolve_checkpoint" not in jobs

    # Second kill: a probe job with part of its layers written (a half directory Snakemake has marked incomplete).
    run(workdir, *CELLS, "--unlock", name="unlock1")
    process = start(workdir, *CELLS, name="second", hold=PROBE_HALFWAY)
    _, event = wait_for_hold(process, workdir, "second")
    kill_group(process)
    half = workdir / Path(event.removeprefix("write:")).parent
    half_cell, layers_written = half.parent.name, len(list(half.glob("layer=*.json")))
    assert layers_written == 1 and (half / "layer=0.json").is_file()
    _, text = dry_run_jobs(workdir, "--workflow-profile", "none", name="dry-no-profile")
    # Without the profile's rerun-incomplete Snakemake refuses to go on and names the half directory ...
    assert "IncompleteFilesException" in text and str(half.relative_to(workdir)) in text, text[-3000:]
    # ... with it (the default), the probe job is planned again and the directory will be deleted first.
    jobs, text = dry_run_jobs(workdir)
    assert planned(jobs, "probe", half_cell) is not None, text[-3000:]
    assert planned(jobs, "extract_activations", half_cell) is None

    text, seconds = rerun_after_unlock(workdir)
    assert "Using workflow specific profile" in text
    compared = assert_same_cells(workdir, reference)
    FIGURES["a: kill -9 Snakemake in extraction, then in probe"] = {
        "killed": f"extract_activations {killed} as its forward passes began, {kill_point:.1f} s after start ({left})",
        "second kill": f"probe {half_cell} with {layers_written}/3 layer files written",
        "rerun (s)": round(seconds, 1),
        "cell files byte-equal": compared,
    }


def test_one_killed_job_fails_the_run_and_the_same_command_finishes_it(prepared, reference, tmp_path):
    """(c) kill -9 of one extraction job's process only (model jobs run on 1 thread, so the other checkpoint's
    extraction may run beside it and is let go on): Snakemake reports it, removes its outputs and exits; the same
    command (no --unlock needed) completes."""
    workdir = copy_workdir(prepared, tmp_path / "c")
    process = start(workdir, *CELLS, name="first", hold=EXTRACTION_STARTS)
    victim, event = wait_for_hold(process, workdir, "first")
    assert victim in job_processes(process, "extract_activations")
    killed = held_log(event).parent.name
    os.kill(victim, signal.SIGKILL)
    (workdir / "holds" / "first" / "release").touch()  # a job held beside it finishes; only the victim dies
    returncode = process.wait(timeout=TIMEOUT)
    text = output_of(workdir, "first")
    assert returncode != 0 and "Error in rule extract_activations" in text, text[-3000:]
    assert not (workdir / "results" / "activations" / "tiny" / killed / "reliability").exists()
    assert not list((workdir / ".snakemake" / "locks").glob("*"))  # Snakemake itself exited cleanly

    _, text, seconds = run(workdir, *CELLS, name="rerun")
    compared = assert_same_cells(workdir, reference)
    FIGURES["c: kill -9 one extraction job"] = {
        "killed": f"extract_activations {killed} (pid {victim}) as its forward passes began",
        "rerun (s)": round(seconds, 1),
        "cell files byte-equal": compared,
    }


def test_a_failing_job_keeps_every_other_output_and_says_why(prepared, reference, tmp_path):
    """A truncated checkpoint fails its extraction; --keep-going finishes the other checkpoint's cells, nothing
    that was already there is touched, and the job's log says why in its last line."""
    workdir = copy_workdir(prepared, tmp_path / "fail")
    weights = workdir / "results" / "pretrain" / "tiny" / "checkpoints" / "step0" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (workdir / "results").rglob("*") if p.is_file()}
    targets = [cell for cell in CELLS if "/steering/" not in cell]
    returncode, text, seconds = run(workdir, *targets, "--keep-going", name="keep-going", check=False)
    assert returncode != 0
    last_line = (workdir / "logs" / "extract_activations" / "tiny" / "step0" / "reliability.log").read_text().strip()
    last_line = last_line.splitlines()[-1]
    assert last_line.startswith(
        "trusttrace.errors.TrustTraceError: model 'tiny' (results/pretrain/tiny/checkpoints/step0)"
    ), last_line
    assert "truncated or corrupt" in last_line, last_line
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in before} == before
    assert not (workdir / "results" / "activations" / "tiny" / "step0" / "reliability").exists()
    expected = {
        path: content
        for path, content in cell_files(reference).items()
        if "/step60/" in path and not path.startswith("results/steering/")
    }
    assert cell_files(workdir) == expected
    FIGURES["failing job (--keep-going)"] = {
        "run (s)": round(seconds, 1),
        "log's last line": last_line,
        "other cell files byte-equal": len(expected),
    }


def test_a_kill_inside_a_job_leaves_no_half_file_a_reader_accepts(tmp_path):
    """The write path itself, killed with SIGKILL at its two critical points: after some shards but before the
    manifest, and inside a shard between the temporary file and the rename."""
    script = """
import os, signal, sys
import numpy as np
from pathlib import Path
from trusttrace import io, layout, shards
directory, stage = Path(sys.argv[1]), sys.argv[2]
directory.mkdir()
rows = np.arange(6)
def shard(layer):
    return shards.write_shard(directory / layout.layer_file(layer, "parquet"), rows, rows % 2, ["train"] * 6,
                              np.full((6, 4), layer, np.float32), {"layer": layer})
shard(0)
io.write_json(directory / "cell.json", {"ok": 1})
if stage == "rename":
    os.replace = lambda *args: os.kill(os.getpid(), signal.SIGKILL)
shard(1)
os.kill(os.getpid(), signal.SIGKILL)
"""
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow_scripts")}
    for stage in ("manifest", "rename"):
        directory = tmp_path / stage
        result = subprocess.run([sys.executable, "-c", script, str(directory), stage], env=env)
        assert result.returncode == -signal.SIGKILL
        names = sorted(p.name for p in directory.iterdir())
        if stage == "manifest":
            assert names == ["cell.json", "layer=0.parquet", "layer=1.parquet"]
        else:
            assert names == [".layer=1.parquet.tmp", "cell.json", "layer=0.parquet"]
        for layer in (0, 1):
            with pytest.raises(TrustTraceError, match="manifest.json: missing; the extraction did not finish"):
                read_shard(directory, layer)
        assert np.array_equal(read_shard_unverified(directory, 0), np.zeros((6, 4), np.float32))


def read_shard_unverified(directory: Path, layer: int) -> np.ndarray:
    """A shard renamed into place is whole even without its manifest (Parquet reads it back exactly)."""
    import pyarrow.parquet as pq

    column = pq.read_table(directory / f"layer={layer}.parquet").column("activation").combine_chunks()
    return column.values.to_numpy().reshape(-1, column.type.list_size)
