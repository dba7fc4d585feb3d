"""The tiny workflow through a REAL SLURM (profiles/slurm) gives the same per-cell metrics as a local run.

A single-node SLURM is started on localhost for this module (tests/slurm_cluster.py; needs root and Debian's
slurm-wlm + munge, see .ci/install_slurm.sh) and stopped afterwards, also when the test fails. The test is
skipped, with the reason, where that cannot be done.

    .venv/bin/pytest -m slurm tests/test_slurm.py -s      # -s prints the timings
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import system_part_used
from slurm_cluster import LocalSlurm, find, skip_reason

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
TINY = REPO / "tests" / "configs" / "tiny.yaml"
SLURM_PROFILE = REPO / "profiles" / "slurm"
METRIC_STEPS = ("probe", "mi", "steering")
RUN_LIMIT_S = 600  # per snakemake run; `timeout -k` because snakemake under the plugin ignores SIGTERM


def cell_targets(config_path: Path) -> list[str]:
    """results/{probe,mi,steering}/<model>/<checkpoint>/<dimension> for every cell of a (flat) test config."""
    config = yaml.safe_load(config_path.read_text())
    targets = []
    for model, spec in config["models"].items():
        checkpoints = [entry["name"] for entry in spec["checkpoints"]]
        sources = config.get("steering", {}).get("source_checkpoints", "all")
        steering_sources = checkpoints if sources == "all" else list(sources)
        for dimension in config["dimensions"]:
            targets += [f"results/probe/{model}/{c}/{dimension}" for c in checkpoints]
            targets += [f"results/mi/{model}/{c}/{dimension}" for c in checkpoints]
            targets += [f"results/steering/{model}/{c}/{dimension}" for c in steering_sources]
    return targets


def metrics(workdir: Path) -> dict[str, str]:
    """Every per-cell metrics JSON under results/{probe,mi,steering}, as canonical text (NaN-safe equality)."""
    found = {}
    for step in METRIC_STEPS:
        for path in sorted((workdir / "results" / step).rglob("*.json")):
            found[str(path.relative_to(workdir))] = json.dumps(json.loads(path.read_text()), sort_keys=True)
    return found


def profile_default_resources(partition: str) -> list[str]:
    """The slurm profile's default-resources with the partition pinned, as --default-resources arguments
    (a command-line option replaces the profile's whole list)."""
    profile = yaml.safe_load((SLURM_PROFILE / "config.yaml").read_text())
    resources = dict(profile["default-resources"], slurm_partition=partition)
    return [f"{key}={value}" for key, value in resources.items()]


def profile_groups(extra: dict[str, str]) -> list[str]:
    """The slurm profile's --groups and --group-components, with `extra` rule=group entries added."""
    profile = yaml.safe_load((SLURM_PROFILE / "config.yaml").read_text())
    groups = dict(profile.get("groups", {}), **extra)
    components = profile.get("group-components", {})
    return [
        "--groups",
        *(f"{rule}={group}" for rule, group in groups.items()),
        "--group-components",
        *(f"{group}={n}" for group, n in components.items()),
    ]


def environment() -> dict[str, str]:
    env = dict(os.environ)
    # The venv's python runs snakemake, the jobs' inner snakemake (the plugin submits `<sys.executable> -m
    # snakemake`, sbatch --export=ALL) and the rules' scripts.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", ""), "/usr/sbin", "/sbin"])
    for var in [var for var in env if var.startswith(("SLURM_", "SBATCH_", "SRUN_"))]:
        del env[var]
    return env


def start_snakemake(workdir: Path, extra: list[str], log: Path) -> subprocess.Popen:
    workdir.mkdir(parents=True, exist_ok=True)
    command = [
        "timeout",
        "-k",
        "10",
        str(RUN_LIMIT_S),
        sys.executable,
        "-m",
        "snakemake",
        *cell_targets(TINY),  # first: several options take any number of values (nargs="+")
        "--snakefile",
        str(SNAKEFILE),
        "--configfile",
        str(TINY),
        "--directory",
        str(workdir),
        *extra,
    ]
    with open(log, "w") as handle:
        handle.write(" ".join(command) + "\n")
        handle.flush()
        return subprocess.Popen(
            command,
            cwd=workdir,
            env=environment(),
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def kill_run(process: subprocess.Popen):
    """Kill a run started by start_snakemake that is still going (its own session: timeout, snakemake, jobs)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


def slurm_logs(workdir: Path) -> str:
    parts = []
    for path in sorted((workdir / ".snakemake" / "slurm_logs").rglob("*.log")):
        parts.append(f"--- {path}:\n" + "\n".join(path.read_text(errors="replace").splitlines()[-25:]))
    return "\n".join(parts[-6:])


def tail(path: Path, lines: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    with LocalSlurm(tmp_path_factory.mktemp("slurm-cluster")) as cluster:  # stop() runs on any outcome
        sinfo = subprocess.run(
            [find("sinfo"), "-h", "-o", "%P %a %D %c %m %T %N"], capture_output=True, text=True, timeout=30
        )
        version = subprocess.run([find("sinfo"), "-V"], capture_output=True, text=True, timeout=30).stdout.strip()
        system_part_used("SLURM", f"{version}, sinfo: {sinfo.stdout.strip() or sinfo.stderr.strip()}")
        yield cluster


TOY_SNAKEFILE = """
rule all:
    input: expand("out/{i}.txt", i=range(3))

rule toy:
    output: "out/{i}.txt"
    shell: "echo $SLURM_JOB_ID $SLURM_JOB_PARTITION $(command -v python) > {output}"
"""


def test_profile_defaults_submit_to_the_default_partition(slurm_cluster, tmp_path):
    """profiles/slurm as shipped (empty slurm_partition, no account): jobs go to the cluster's default
    partition and run with this venv's python first on PATH."""
    cluster = slurm_cluster
    (tmp_path / "Snakefile").write_text(TOY_SNAKEFILE)
    command = [
        "timeout",
        "-k",
        "10",
        "180",
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(tmp_path / "Snakefile"),
        "--directory",
        str(tmp_path),
        "--profile",
        str(SLURM_PROFILE),
        "--cores",
        str(cluster.cpus),
        "--resources",
        f"mem_mb={cluster.mem_mb}",
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--seconds-between-status-checks",
        "1",
    ]
    run = subprocess.run(command, cwd=tmp_path, env=environment(), capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for i in range(3):
        job_id, partition, python = (tmp_path / "out" / f"{i}.txt").read_text().split()
        assert job_id.isdigit() and partition == cluster.partition
        assert Path(python).parent == Path(sys.executable).parent


def test_tiny_workflow_under_slurm_matches_local_run(slurm_cluster, tmp_path):
    cluster = slurm_cluster
    local_dir, slurm_dir = tmp_path / "local", tmp_path / "slurm"
    local_log, slurm_log = tmp_path / "local.log", tmp_path / "slurm.log"

    # Both runs at once: the SLURM run spends much of its time waiting for status polls.
    jobs_before = set(cluster.job_ids())
    started = time.monotonic()
    slurm_run = start_snakemake(
        slurm_dir,
        [
            "--profile",
            str(SLURM_PROFILE),
            # This node's size: caps threads and the group job's width (--cores) and every job's memory.
            "--cores",
            str(cluster.cpus),
            "--resources",
            f"mem_mb={cluster.mem_mb}",
            "--default-resources",
            *profile_default_resources(cluster.partition),
            # No accounting on the test cluster: sacct fails, squeue (MinJobAge=600) knows every job.
            "--slurm-status-command",
            "squeue",
            "--slurm-init-seconds-before-status-checks",
            "1",
            "--seconds-between-status-checks",
            "1",
            "--slurm-keep-successful-logs",
            "--latency-wait",
            "5",
            "--retries",
            "0",
            # Test only: the tiny pre-training chain joins the "prep" job. Each sequential SLURM job costs 10-50 s
            # of status polling here (the plugin's interval grows by 10 s per idle poll); this turns 6 into 1.
            *profile_groups({"pretrain_checkpoint": "prep", "resolve_checkpoint": "prep"}),
        ],
        slurm_log,
    )
    runs = [slurm_run]
    try:
        local_run = start_snakemake(local_dir, ["--cores", "2"], local_log)
        runs.append(local_run)
        local_rc = local_run.wait()
        local_s = time.monotonic() - started
        slurm_rc = slurm_run.wait()
        slurm_s = time.monotonic() - started
    finally:  # interrupted: no snakemake left behind (the fixture then cancels the SLURM jobs)
        for run in runs:
            kill_run(run)
    print(
        f"\nSLURM start-up {cluster.startup_seconds:.1f} s; tiny cells run concurrently: "
        f"local --cores 2 {local_s:.0f} s, SLURM {slurm_s:.0f} s"
    )

    assert local_rc == 0, f"local run failed ({local_rc}):\n{tail(local_log)}"
    assert slurm_rc == 0, (
        f"SLURM run failed ({slurm_rc}{', timed out' if slurm_rc in (124, 137) else ''}):\n{tail(slurm_log)}\n"
        f"{slurm_logs(slurm_dir)}\n--- slurmctld.log:\n{tail(cluster.root / 'log' / 'slurmctld.log', 20)}"
    )

    # The jobs really went through SLURM, all finished, and the per-cell rules shared group jobs.
    jobs = subprocess.run(
        [find("squeue"), "-h", "--states=all", "-o", "%i|%T|%k"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    jobs = [line for line in jobs if line.split("|")[0] not in jobs_before]
    states = {line.split("|")[1] for line in jobs}
    assert jobs and states == {"COMPLETED"}, jobs
    submitted = slurm_log.read_text().count("has been submitted with SLURM jobid")
    assert submitted == len(jobs)
    # One group job per checkpoint: its extraction, per-cell analyses and steering ran together on one node.
    group_logs = list((slurm_dir / ".snakemake" / "slurm_logs").glob("group_checkpoint-*/**/*.log"))
    checkpoints = [c["name"] for c in yaml.safe_load(TINY.read_text())["models"]["tiny"]["checkpoints"]]
    # The plugin names a group's log folder group_<group id>_<its rules>.
    grouped = [re.match(r"group_checkpoint-tiny-([^_]+)_", log.parent.name) for log in group_logs]
    assert all(grouped) and sorted(match.group(1) for match in grouped) == sorted(checkpoints), group_logs
    assert len(group_logs) == len(checkpoints), "a checkpoint's jobs were submitted in more than one SLURM job"

    # The jobs ran this venv's python.
    job_id = jobs[0].split("|")[0]
    script = subprocess.run(
        [find("scontrol"), "write", "batch_script", job_id, "-"], capture_output=True, text=True, check=True
    ).stdout
    assert f"{sys.executable} -m snakemake" in script, script

    local, remote = metrics(local_dir), metrics(slurm_dir)
    assert local, "the local run wrote no metrics"
    for step in METRIC_STEPS:
        assert any(name.startswith(f"results/{step}/") for name in local), f"no {step} metrics"
    assert sorted(remote) == sorted(local)
    different = [name for name in local if local[name] != remote[name]]
    assert not different, f"metrics differ between the SLURM and the local run: {different}"
