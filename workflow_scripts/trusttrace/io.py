"""Small I/O helpers shared by the rule scripts: per-job logging and atomic writes. No torch imports."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable

from trusttrace.errors import DegenerateCellError


def setup_job_logging(log_path: str | Path | None) -> None:
    """Send logging and stderr (progress bars, warnings, tracebacks) to the job's log file."""
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        sys.stderr = open(log_path, "a", buffering=1)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )


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
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(_plain(content), indent=2, sort_keys=True, allow_nan=False) + "\n")
    os.replace(temporary, path)


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def cell_json_name(layer: int) -> str:
    return f"layer={layer}.json"


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
