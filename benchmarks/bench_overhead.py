"""Where a run's time goes: per rule, the fixed cost of a job (interpreter, imports, model load) against its
compute, and the run's wall time against its own pre-training chain.

    python benchmarks/bench_overhead.py --run /tmp/default-run   # run the default config there first, then report
    python benchmarks/bench_overhead.py --workdir .              # report on a run that already finished here

Figures per rule, means over the run's jobs:
  wall         the job as Snakemake's benchmark file timed it (process start to exit);
  before_main  process start to the script's main(): interpreter, Snakemake's script preamble, imports;
  load         main() to the start of the computation: loading the model (0 for jobs without one);
  compute      computation and writing;
  fixed        wall - compute, and its share of the wall time.
The first three come from the "job timing" line every job writes to its log (trusttrace.io.job_timing).
Run: the wall time of `snakemake --cores N` (timed here with --run; else from the first to the last timestamp of
the newest Snakemake log), the pre-training chain (the pretrain_checkpoint jobs' wall times, which run one after
the other) and their ratio. The machine's load average is printed beside the figures: figures taken while other
work runs are not comparable with figures from an idle machine.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow_scripts"))

from machine import load_average  # noqa: E402
from trusttrace.io import parse_job_timing  # noqa: E402

LOG_TIMESTAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]", re.M)


def run_default(workdir: Path, cores: int) -> float:
    """Run the default config from scratch in ``workdir`` (a copy of the workflow); its wall time in seconds."""
    if workdir.exists():
        shutil.rmtree(workdir)
    shutil.copytree(
        REPO,
        workdir,
        ignore=shutil.ignore_patterns("results", "logs", ".snakemake", ".git", ".venv", "__pycache__", "*.egg-info"),
    )
    print(f"running the default config in {workdir} with --cores {cores} ({load_average()})", flush=True)
    started = time.perf_counter()
    with open(workdir / "bench_overhead.log", "w") as log:
        subprocess.run(["snakemake", "--cores", str(cores)], cwd=workdir, check=True, stdout=log, stderr=log)
    return time.perf_counter() - started


def benchmark_seconds(path: Path) -> float:
    """The ``s`` column (wall seconds) of a Snakemake benchmark file's last row."""
    rows = path.read_text().strip().splitlines()
    return float(rows[-1].split("\t")[0])


def rule_figures(workdir: Path, rule: str) -> dict | None:
    benchmarks = sorted((workdir / "results" / "benchmarks" / rule).rglob("*.tsv"))
    if not benchmarks:
        return None
    timings = []
    for log in sorted((workdir / "logs" / rule).rglob("*.log")):
        lines = [parse_job_timing(line) for line in log.read_text(errors="replace").splitlines()]
        lines = [line for line in lines if line]
        if lines:
            timings.append(lines[-1])  # the newest run's job (logs are appended to)
    walls = [benchmark_seconds(path) for path in benchmarks]
    figures = {"jobs": len(walls), "wall": statistics.mean(walls), "total": sum(walls)}
    for key in ("before_main", "load", "compute"):
        values = [t[key] for t in timings if t.get(key) == t.get(key)]  # NaN-free
        figures[key] = statistics.mean(values) if values else float("nan")
    figures["fixed"] = figures["wall"] - figures["compute"]
    return figures


def pretraining_overlap(workdir: Path) -> str | None:
    """When the pre-training chain ended and how much job time ran after it (job start = benchmark file mtime -
    its wall time): the tail that only the last checkpoint's analyses, steering and the aggregates should fill."""
    jobs = []
    for path in (workdir / "results" / "benchmarks").rglob("*.tsv"):
        rule = path.relative_to(workdir / "results" / "benchmarks").parts[0]
        end = path.stat().st_mtime
        jobs.append((rule, end - benchmark_seconds(path), end))
    if not any(rule == "pretrain_checkpoint" for rule, _, _ in jobs):
        return None
    start = min(begin for _, begin, _ in jobs)
    chain_end = max(end for rule, _, end in jobs if rule == "pretrain_checkpoint")
    last = max(end for _, _, end in jobs)
    after = sum(end - max(begin, chain_end) for _, begin, end in jobs if end > chain_end)
    return (
        f"pre-training chain ended {chain_end - start:.0f} s after the first job started; the run went on "
        f"{last - chain_end:.0f} s more, with {after:.0f} job-seconds in that time"
    )


def snakemake_log_span(workdir: Path) -> float | None:
    """Seconds from the first to the last timestamp of the newest Snakemake log (job starts and ends)."""
    logs = sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"))
    if not logs:
        return None
    stamps = [datetime.strptime(s, "%a %b %d %H:%M:%S %Y") for s in LOG_TIMESTAMP.findall(logs[-1].read_text())]
    return (stamps[-1] - stamps[0]).total_seconds() if len(stamps) > 1 else None


def interpreter_costs() -> dict[str, float]:
    """Median seconds of a bare interpreter and of one importing torch and transformers (fresh processes)."""
    out = {}
    for name, code in (("python -c pass", "pass"), ("+ import torch, transformers", "import torch, transformers")):
        times = []
        for _ in range(3):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            times.append(time.perf_counter() - started)
        out[name] = statistics.median(times)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("."), help="a finished run's directory")
    parser.add_argument("--run", type=Path, help="run the default config from scratch in this directory first")
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    wall = None
    workdir = args.workdir
    if args.run:
        wall = run_default(args.run, args.cores)
        workdir = args.run
    print(f"\n{load_average()} (after the run)")
    header = (
        f"{'rule':28} {'jobs':>4} {'wall':>7} {'before_main':>11} {'load':>6} {'compute':>8} {'fixed':>6} {'share':>6}"
    )
    print(header + f" {'job-s':>7}")
    total_fixed = total = 0.0
    for rule in (
        "pretrain_checkpoint",
        "resolve_checkpoint",
        "extract_activations",
        "probe",
        "mutual_information",
        "steering_vectors",
        "steering_effect",
        "aggregate_metrics",
        "aggregate_findings",
        "plot_dimension",
        "plot_steering",
        "plot_overview",
    ):
        figures = rule_figures(workdir, rule)
        if figures is None:
            continue
        share = figures["fixed"] / figures["wall"] if figures["wall"] else float("nan")
        print(
            f"{rule:28} {figures['jobs']:>4} {figures['wall']:>6.2f}s {figures['before_main']:>10.2f}s "
            f"{figures['load']:>5.2f}s {figures['compute']:>7.2f}s {figures['fixed']:>5.2f}s {share:>6.0%} "
            f"{figures['total']:>6.0f}s"
        )
        if rule != "pretrain_checkpoint":
            total += figures["total"]
            total_fixed += figures["fixed"] * figures["jobs"]
    if total:
        print(f"analysis jobs above: {total:.0f} job-seconds, of which fixed cost {total_fixed:.0f} s")
    for name, seconds in interpreter_costs().items():
        print(f"{name:32} {seconds:.2f} s")
    chain = rule_figures(workdir, "pretrain_checkpoint")
    wall = wall if wall is not None else snakemake_log_span(workdir)
    overlap = pretraining_overlap(workdir)
    if overlap:
        print(overlap)
    if chain and wall:
        print(
            f"\nrun wall time {wall:.0f} s; pre-training chain {chain['total']:.0f} s "
            f"({chain['jobs']} segments); ratio {wall / chain['total']:.2f}"
        )


if __name__ == "__main__":
    main()
