"""Small I/O helpers shared by the rule scripts: per-job logging and atomic writes. No torch imports."""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import math
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trusttrace.errors import DegenerateCellError

# ---- test hook ----------------------------------------------------------------------------------------------
# The fault tests kill a job at an exact point. With both variables set (only the tests' runs set them), a job
# stops when an event matches TRUSTTRACE_TEST_HOLD_AT (a regular expression). Events: ``log:<log path>:<text>``
# for text the job writes to its log (progress bars included), ``write:<path>`` just before write_json writes a
# file, ``pretrain:<output dir>:step=<n>`` after each pre-training step. The job then writes ``reached-<pid>``
# (holding the event) into TRUSTTRACE_TEST_HOLD_DIR and waits there until it is killed or a file ``release``
# appears. Unset (always, outside the tests) the hook does nothing.
TEST_HOLD_AT, TEST_HOLD_DIR = "TRUSTTRACE_TEST_HOLD_AT", "TRUSTTRACE_TEST_HOLD_DIR"


def fault_test_hold(event: str) -> None:
    """Test hook: wait here if the fault tests asked to kill this job at ``event`` (see above); else nothing."""
    pattern, directory = os.environ.get(TEST_HOLD_AT), os.environ.get(TEST_HOLD_DIR)
    if not pattern or not directory or not re.search(pattern, event):
        return
    directory = Path(directory)
    reached = directory / f"reached-{os.getpid()}"
    temporary = directory / f".reached-{os.getpid()}.tmp"
    temporary.write_text(event)
    os.replace(temporary, reached)
    while not (directory / "release").exists():
        time.sleep(0.01)


class _LogFile:
    """The job's log file as stderr, passing what is written through the test hook (no-op outside the tests)."""

    def __init__(self, handle, path: str):
        self._handle, self._path = handle, path

    def write(self, text: str) -> int:
        written = self._handle.write(text)
        if text.strip():
            self._handle.flush()
            fault_test_hold(f"log:{self._path}:{text}")
        return written

    def __getattr__(self, name: str):
        return getattr(self._handle, name)


def setup_job_logging(log_path: str | Path | None) -> None:
    """Send logging and stderr (progress bars, warnings, tracebacks) to the job's log file, and log where the
    job's time went when it exits (see ``job_timing``)."""
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handle = open(log_path, "a", buffering=1)  # noqa: SIM115 (open for the rest of the job)
        sys.stderr = _LogFile(handle, str(log_path)) if os.environ.get(TEST_HOLD_AT) else handle
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    if not _JOB_CLOCK:
        _JOB_CLOCK["main"] = time.perf_counter()
        _JOB_CLOCK["before_main"] = process_age_seconds()
        atexit.register(_log_job_timing)
        # A failing job's log ends with its error (what users and Snakemake's --show-failed-logs read), not timing.
        previous_hook = sys.excepthook

        def note_failure(*exc_info):
            _JOB_CLOCK["failed"] = True
            previous_hook(*exc_info)

        sys.excepthook = note_failure


def _log_job_timing() -> None:
    if not _JOB_CLOCK.get("failed"):
        logging.getLogger(__name__).info(job_timing())


# ---- where a job's time goes ----------------------------------------------------------------------------------
# A job is a fresh Python process: the interpreter, Snakemake's script preamble and the imports run before the
# script's main(); jobs that run a model then load it; the rest is compute and writing. Each job logs these as one
# "job timing" line (benchmarks/bench_overhead.py collects them). Marks are perf_counter values of this process.
_JOB_CLOCK: dict[str, float | None] = {}
JOB_TIMING_PREFIX = "job timing:"


def process_age_seconds() -> float | None:
    """Seconds since this process started (Linux: /proc), None where that cannot be read."""
    try:
        stat = Path("/proc/self/stat").read_text()
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22, starttime, in clock ticks since boot
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def mark_compute_start() -> None:
    """The job's model (if any) is loaded and its computation starts now (the first call counts)."""
    _JOB_CLOCK.setdefault("compute", time.perf_counter())


def job_timing() -> str:
    """``job timing: before_main=<s> load=<s> compute=<s>`` (seconds): process start to main(), main() to the
    start of the computation (loading the model; 0 for jobs without one), computation and writing to now."""
    now = time.perf_counter()
    main = _JOB_CLOCK.get("main", now)
    compute = _JOB_CLOCK.get("compute", main)
    before = _JOB_CLOCK.get("before_main")
    before_text = "nan" if before is None else f"{before:.3f}"
    return f"{JOB_TIMING_PREFIX} before_main={before_text} load={compute - main:.3f} compute={now - compute:.3f}"


def parse_job_timing(line: str) -> dict[str, float] | None:
    """The seconds of a ``job_timing`` line, None for any other line."""
    if JOB_TIMING_PREFIX not in line:
        return None
    fields = line.split(JOB_TIMING_PREFIX, 1)[1].split()
    return {key: float(value) for key, value in (field.split("=", 1) for field in fields)}


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        return _plain(value.item())
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def write_json(path: str | Path, content: Any) -> None:
    """Write JSON to a temporary name and rename it into place, so a killed job leaves no half file."""
    path = Path(path)
    fault_test_hold(f"write:{path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(_plain(content), indent=2, sort_keys=True, allow_nan=False) + "\n")
    os.replace(temporary, path)


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def write_cell(path: str | Path, keys: dict, compute: Callable[[], dict]) -> dict:
    """Compute one cell's metrics and write them after the cell's keys; a degenerate cell (no information in its
    representation) is written with its reason under ``degenerate`` instead of failing the whole job."""
    try:
        metrics = compute()
    except DegenerateCellError as error:
        logging.getLogger(__name__).warning("%s layer %s: %s", Path(path).parent, keys.get("layer"), error)
        metrics = {"degenerate": str(error)}
    content = {**keys, **metrics}
    write_json(path, content)
    return content


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's content, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_layer_cells(output_dir: str | Path, layers, keys: dict, compute: Callable[[int], dict]) -> None:
    """One cell file per layer, ``layer=<L>.json`` in ``output_dir``: the cell's ``keys`` plus ``layer``, then
    ``compute(layer)``'s metrics (see ``write_cell``: a degenerate layer is recorded, not fatal)."""
    from functools import partial

    from trusttrace import layout

    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    for layer in layers:
        write_cell(output / layout.layer_file(layer, "json"), {**keys, "layer": layer}, partial(compute, layer))
