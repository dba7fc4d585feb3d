"""Incremental recomputation: wall time of the run after adding 1 checkpoint to 8, as a ratio to the full run.

    python benchmarks/bench_incremental.py [--workdir DIR] [--cores 2]

Uses the tiny test model (tests/configs/tiny.yaml settings) with 8 log-spaced checkpoints and one demo
dimension, runs the whole workflow, then appends a 9th, later checkpoint and runs again (target ratio <= 0.2).
Prints both wall times, the ratio and the jobs each run executed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
STEPS = (0, 2, 4, 8, 16, 32, 64, 128)


sys.path.insert(0, str(REPO / "tests"))
from helpers import job_stats, run_workflow  # the tests' snakemake runner: one way to run the workflow
from machine import load_average  # noqa: E402


def run(workdir: Path, config: dict, cores: int) -> tuple[float, dict[str, int]]:
    start = time.perf_counter()
    result = run_workflow(workdir, config, "--cores", str(cores))
    return time.perf_counter() - start, job_stats(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    config = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    config["models"]["tiny"]["checkpoints"] = [{"name": f"step{s}", "step": s} for s in STEPS]
    config["steering"]["target"] = {"model": "tiny", "checkpoint": f"step{STEPS[-1]}"}
    with tempfile.TemporaryDirectory() as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        full, full_jobs = run(workdir, config, args.cores)
        config["models"]["tiny"]["checkpoints"].append({"name": "step160", "step": 160})
        incremental, incremental_jobs = run(workdir, config, args.cores)
    print(f"full run, 8 checkpoints:         {full:7.1f} s  {sum(full_jobs.values())} jobs")
    print(f"after adding a 9th checkpoint:   {incremental:7.1f} s  {incremental_jobs}")
    print(f"ratio incremental / full: {incremental / full:.2f} (target <= 0.2); {load_average()}")


if __name__ == "__main__":
    main()
