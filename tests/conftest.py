"""Shared fixtures: a tiny tokenizer + Llama made here (nothing is downloaded), and the repo paths."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
from helpers import REPO, SYSTEM_PARTS_USED, TINY_SETTINGS, system_part_used  # noqa: F401 (fixtures and hooks)

# The library of this checkout, in process and in the subprocesses tests start, even where the environment has
# another checkout's trusttrace installed (an editable install points at one working tree only).
LIBRARY = str(REPO / "workflow_scripts")
sys.path.insert(0, LIBRARY)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (LIBRARY, os.environ.get("PYTHONPATH")) if p)


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


# ---- system parts (Chromium, SLURM, Polars, DuckDB): required in CI, reported at the end --------------------------
# Outside CI a test whose system part is missing skips with the reason. With CI=true (.ci/run) such a skip fails the
# run: CI must not pass without the tests the README promises. The skip reasons of those tests name their part.
IN_CI = os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")
SYSTEM_PART_SKIP = re.compile(r"chromium|slurm|munge|polars|duckdb", re.IGNORECASE)


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
