"""What several test modules share: the repository's paths, running the workflow in a subprocess, the shared tiny
run, and the record of system parts (Chromium, SLURM, Parquet readers) a run used. Fixtures live in conftest.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"
# The workflow under test; a wrapper Snakefile can stand in for it (e.g. to try a rule change).
SNAKEFILE = Path(os.environ.get("TRUSTTRACE_SNAKEFILE", REPO / "Snakefile"))


def run_workflow(
    workdir: Path, config: dict, *args: str, env: dict | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    """``snakemake -s <Snakefile> -d workdir --configfile workdir/config.yaml *args`` in a subprocess, with
    ``config`` written to that file; ``env`` replaces the environment (default: this one, hub offline).
    ``check``: raise with the end of its output if it fails."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(SNAKEFILE),
        "-d",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        *args,
    ]
    environment = dict(env) if env is not None else {**os.environ, "HF_HUB_OFFLINE": "1"}
    environment["PYTHONHASHSEED"] = "0"
    result = subprocess.run(command, capture_output=True, text=True, env=environment)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{result.stdout[-3000:]}\n{result.stderr[-4000:]}")
    return result


TINY_SETTINGS = {
    "vocab_size": 400,
    "hidden_size": 32,
    "num_layers": 2,
    "num_heads": 2,
    "intermediate_size": 64,
    "seq_len": 32,
    "batch_size": 4,
    "learning_rate": 0.003,
    "warmup_steps": 2,
    "weight_decay": 0.01,
    "seed": 0,
    "threads": 1,
}


def tiny_workflow(tmp_path_factory) -> Path:
    """The whole workflow on tests/configs/tiny.yaml, run once per test session and shared by the tests that only
    read its outputs (a test that changes them works on a copy)."""
    workdir = tmp_path_factory.getbasetemp() / "tiny_workflow"
    done = workdir / ".tiny_workflow_done"
    if not done.is_file():
        config = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
        run_workflow(workdir, config, "--cores", "2")
        done.write_text("ok\n")
    return workdir


SYSTEM_PARTS_USED: dict[str, str] = {}


def system_part_used(part: str, description: str) -> None:
    """Record what a test used of a system part (a version, an ``sinfo`` line) for the end-of-run summary line."""
    SYSTEM_PARTS_USED[part] = " ".join(description.split())


def job_stats(result: subprocess.CompletedProcess) -> dict[str, int]:
    """The 'Job stats' table Snakemake prints (a run's or a dry run's plan) as {rule: count}."""
    text = result.stdout + result.stderr
    table = text[text.index("Job stats:") :]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m.group(1) != "total"}
