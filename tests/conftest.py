"""Shared fixtures: a tiny tokenizer + Llama made here (nothing is downloaded), and the repo paths."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
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


@pytest.fixture(scope="session")
def tiny_corpus() -> str:
    from trusttrace.demo_data import demo_statements_for_corpus

    return "\n\n".join(demo_statements_for_corpus(seed=0)[:800])


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory, tiny_corpus) -> Path:
    from trusttrace.pretrain import train_tokenizer

    directory = tmp_path_factory.mktemp("tokenizer")
    train_tokenizer(tiny_corpus, TINY_SETTINGS["vocab_size"], directory)
    return directory


@pytest.fixture(scope="session")
def tiny_checkpoint_dir(tmp_path_factory, tiny_tokenizer_dir, tiny_corpus) -> Path:
    """A tiny Llama trained for 3 steps, saved with save_pretrained (safetensors) + tokenizer."""
    from trusttrace.pretrain import encode_corpus, train_segment

    directory = tmp_path_factory.mktemp("checkpoint")
    train_segment(
        settings=TINY_SETTINGS,
        tokenizer_dir=tiny_tokenizer_dir,
        token_stream=encode_corpus(tiny_corpus, tiny_tokenizer_dir),
        target_step=3,
        output_dir=directory,
        previous_dir=None,
        threads=1,
        progress=False,
    )
    return directory


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoint_dir):
    from trusttrace.models import load_model_and_tokenizer

    return load_model_and_tokenizer(str(tiny_checkpoint_dir))


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


# ---- system parts (Chromium, SLURM, Polars, DuckDB): required in CI, reported at the end --------------------------
# Outside CI a test whose system part is missing skips with the reason. With CI=true (.ci/run) such a skip fails the
# run: CI must not pass without the tests the README promises. The skip reasons of those tests name their part.
IN_CI = os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")
SYSTEM_PART_SKIP = re.compile(r"chromium|slurm|munge|polars|duckdb", re.IGNORECASE)
SYSTEM_PARTS_USED: dict[str, str] = {}


def system_part_used(part: str, description: str) -> None:
    """Record what a test used of a system part (a version, an ``sinfo`` line) for the end-of-run summary line."""
    SYSTEM_PARTS_USED[part] = " ".join(description.split())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if SYSTEM_PART_SKIP.search(reason):
            report.outcome = "failed"
            report.longrepr = f"CI=true and a system part this test needs is missing: {reason}"
    if report.when == "call" and report.passed and "polars_and_duckdb" in item.name:
        from importlib.metadata import version

        system_part_used("Parquet readers", f"polars {version('polars')}, duckdb {version('duckdb')}")


def pytest_terminal_summary(terminalreporter):
    parts = "; ".join(f"{part}: {used}" for part, used in sorted(SYSTEM_PARTS_USED.items()))
    terminalreporter.write_line(f"system parts used{' (CI=true)' if IN_CI else ''}: {parts or 'none'}")
