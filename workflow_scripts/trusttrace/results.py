"""TrustTrace's results from Python: tables, activations and steering vectors of a finished run.

    from trusttrace import results
    metrics = results.metrics("results")                     # tidy table, one row per cell x metric
    X, rows = results.activations("tiny", "step1000", "word_order", layer=2)
    v, info = results.steering_vector("tiny", "step1000", "privacy", layer=2)

Every function takes ``results`` (the run's results directory, default ``results``) and raises one
``TrustTraceError`` naming what exists nearby when a cell is missing, or naming the file when a shard fails its
checksum. Torch-free: numpy, pandas and pyarrow only.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from trusttrace import layout
from trusttrace.errors import TrustTraceError

__all__ = ["TrustTraceError", "metrics", "phases", "findings", "activations", "steering_vector", "cells"]


def _table(name: str, results: str | Path) -> pd.DataFrame:
    path = layout.table(name, results)
    if not path.is_file():
        existing = sorted(p.stem for p in path.parent.glob("*.parquet")) if path.parent.is_dir() else []
        raise TrustTraceError(
            f"{path}: no {name} table (tables here: {existing or 'none'}); run `snakemake --cores N` first"
        )
    return pd.read_parquet(path)


def metrics(results: str | Path = layout.RESULTS) -> pd.DataFrame:
    """The tidy metrics table: one row per (model, checkpoint, dimension, layer, metric[, alpha]) with ``value``
    and, where the metric has one, ``ci_low``/``ci_high``."""
    return _table("metrics", results)


def phases(results: str | Path = layout.RESULTS) -> pd.DataFrame:
    """One row per (model, dimension, layer): fitting / compression of I(X;T) and I(Y;T)."""
    return _table("phases", results)


def findings(results: str | Path = layout.RESULTS) -> pd.DataFrame:
    """One row per (model, dimension): separability, best probe, controls, phases, steering (see README)."""
    return _table("findings", results)


def cells(results: str | Path = layout.RESULTS) -> pd.DataFrame:
    """Every extracted (model, checkpoint, dimension) with its layers: what ``activations`` can load."""
    root = Path(results) / "activations"
    rows = [
        {
            "model": d.parent.parent.name,
            "checkpoint": d.parent.name,
            "dimension": d.name,
            "layers": layout.layers_in(d, "parquet"),
        }
        for d in sorted(root.glob("*/*/*"))
        if d.is_dir()
    ]
    return pd.DataFrame(rows, columns=["model", "checkpoint", "dimension", "layers"])


def _nearby(path: Path, results: Path) -> str:
    """The deepest existing ancestor of ``path`` under ``results`` and what it holds."""
    parent = path
    while not parent.exists() and parent != results and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{results} does not exist"
    names = sorted(p.name for p in parent.iterdir() if not p.name.startswith("."))
    shown = ", ".join(names[:12]) + (f", ... ({len(names)} in all)" if len(names) > 12 else "")
    return f"{parent} holds: {shown or 'nothing'}"


def activations(
    model: str, checkpoint: str, dimension: str, layer: int, results: str | Path = layout.RESULTS
) -> tuple[np.ndarray, pd.DataFrame]:
    """(X: (n, hidden) float32, rows: DataFrame[row_id, label, split, statement]) of one layer's shard.

    Row i of ``X`` is the representation of ``rows.iloc[i]``'s statement (``row_id`` = its data row in the
    dimension's CSV). The shard is verified against its manifest's sha256 before it is read.
    """
    from trusttrace.shards import read_shard

    results = Path(results)
    directory = layout.activations_dir(model, checkpoint, dimension, results)
    shard = directory / layout.layer_file(layer, "parquet")
    if not shard.is_file():
        raise TrustTraceError(
            f"no activations for {model}/{checkpoint}/{dimension} layer {layer}: {_nearby(shard, results)}"
        )
    arrays = read_shard(directory, layer)
    rows = pd.DataFrame({"row_id": arrays["row_id"], "label": arrays["label"], "split": arrays["split"]})
    data_path = layout.data_table(dimension, results)
    if data_path.is_file():
        statements = pd.read_parquet(data_path, columns=["row_id", "statement"])
        rows = rows.merge(statements, on="row_id", how="left", validate="one_to_one")
    else:
        rows["statement"] = None
    return arrays["activation"], rows


def steering_vector(
    model: str, checkpoint: str, dimension: str, layer: int, results: str | Path = layout.RESULTS
) -> tuple[np.ndarray, dict]:
    """((hidden,) float32 steering vector, its metadata) of one cell.

    The vector points from the untrustworthy to the trustworthy class mean of the train rows; its length is the
    spread of the rows' projections on that direction (so alpha is in those units). The metadata holds the cell's
    keys, ``mean_difference_norm``, ``projection_std`` and ``toward_label``.
    """
    from safetensors import safe_open

    results = Path(results)
    directory = layout.cells_dir("steering_vectors", model, checkpoint, dimension, results)
    path = directory / layout.layer_file(layer, "safetensors")
    if not path.is_file():
        record = directory / layout.layer_file(layer, "json")
        if record.is_file() and "degenerate" in json.loads(record.read_text()):
            reason = json.loads(record.read_text())["degenerate"]
            raise TrustTraceError(f"{model}/{checkpoint}/{dimension} layer {layer} has no steering vector: {reason}")
        raise TrustTraceError(
            f"no steering vector for {model}/{checkpoint}/{dimension} layer {layer}: {_nearby(path, results)}"
        )
    with safe_open(str(path), framework="numpy") as handle:
        metadata = json.loads((handle.metadata() or {}).get("trusttrace", "{}"))
        vector = handle.get_tensor(layout.vector_key(layer))
    return vector, metadata
