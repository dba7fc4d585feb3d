"""Activation shards: one Parquet file per (model, checkpoint, dimension, layer), written atomically and checked
on read.

Columns: ``row_id`` int64, ``label`` int8, ``split`` string, ``activation`` fixed_size_list<float32|float16>[hidden],
and the cell's keys ``model``, ``checkpoint``, ``dimension`` (strings) and ``layer`` (int64), constant within a
shard (run-length encoded: a few bytes), so that DuckDB, Polars or ``pyarrow.dataset`` read every shard of a run as
one table with its keys: ``read_parquet('results/activations/**/*.parquet')``.
Dictionary encoding is off for the vectors (it only makes them larger). Data pages carry CRC checksums that are
verified on read, and the extraction job writes ``manifest.json`` with each shard's sha256, so a truncated or
bit-flipped shard raises an error naming the file and how to rebuild it instead of being read. No torch imports.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from trusttrace import layout
from trusttrace.errors import TrustTraceError
from trusttrace.io import file_sha256

MANIFEST = "manifest.json"


KEY_COLUMNS = ("model", "checkpoint", "dimension", "layer")


def write_shard(
    path: str | Path, row_id, label, split, activations: np.ndarray, metadata: dict, keys: dict | None = None
) -> str:
    """Write one layer's shard to a temporary name, fsync, then rename; returns its sha256.

    ``keys``: the cell's ``model``, ``checkpoint``, ``dimension`` and ``layer``, written as constant columns.
    """
    path = Path(path)
    activations = np.ascontiguousarray(activations)
    n_rows, hidden = activations.shape
    values = pa.array(activations.reshape(-1), type=pa.from_numpy_dtype(activations.dtype))
    columns = {
        "row_id": pa.array(np.asarray(row_id, dtype=np.int64)),
        "label": pa.array(np.asarray(label, dtype=np.int8)),
        "split": pa.array(np.asarray(split, dtype=object).astype(str)),
        "activation": pa.FixedSizeListArray.from_arrays(values, hidden),
    }
    if keys is not None:
        missing = [key for key in KEY_COLUMNS if key not in keys]
        if missing:
            raise TrustTraceError(f"write_shard: keys lack {missing}")
        for key in KEY_COLUMNS:
            kind = pa.int64() if key == "layer" else pa.string()
            columns[key] = pa.array([keys[key]] * n_rows, type=kind)
    table = pa.table(columns).replace_schema_metadata({"trusttrace": json.dumps(metadata, sort_keys=True)})
    temporary = path.with_name(f".{path.name}.tmp")
    pq.write_table(
        table,
        temporary,
        use_dictionary=["split", "model", "checkpoint", "dimension"],
        compression="zstd",
        write_page_checksum=True,
        write_statistics=False,
    )
    with open(temporary, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    return file_sha256(path)


def write_manifest(directory: str | Path, digests: dict[int, str], metadata: dict) -> None:
    directory = Path(directory)
    content = {
        "layers": sorted(digests),
        "sha256": {layout.layer_file(k, "parquet"): v for k, v in sorted(digests.items())},
        **metadata,
    }
    temporary = directory / f".{MANIFEST}.tmp"
    temporary.write_text(json.dumps(content, indent=2, sort_keys=True))
    os.replace(temporary, directory / MANIFEST)


def read_manifest(directory: str | Path) -> dict:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise TrustTraceError(
            f"{path}: missing; the extraction did not finish. "
            f"Rebuild: snakemake --forcerun extract_activations {directory}"
        )
    return json.loads(path.read_text())


def available_layers(directory: str | Path) -> list[int]:
    return read_manifest(directory)["layers"]


def read_shard(directory: str | Path, layer: int, verify: bool = True) -> dict[str, np.ndarray]:
    """One layer's shard as arrays: row_id (n,), label (n,), split (n,) str, activation (n, hidden) float32.

    Raises TrustTraceError naming the file when it is missing, its sha256 differs from the manifest, or Parquet
    finds it unreadable (truncated, flipped bytes caught by page checksums).
    """
    directory = Path(directory)
    path = directory / layout.layer_file(layer, "parquet")
    rebuild = f"rebuild it: snakemake --forcerun extract_activations {directory}"
    manifest = read_manifest(directory)
    if layout.layer_file(layer, "parquet") not in manifest["sha256"]:
        raise TrustTraceError(f"{path}: layer {layer} was not extracted (layers: {manifest['layers']})")
    if not path.is_file():
        raise TrustTraceError(f"{path}: shard missing; {rebuild}")
    if verify and file_sha256(path) != manifest["sha256"][layout.layer_file(layer, "parquet")]:
        raise TrustTraceError(f"{path}: corrupt shard (sha256 differs from {MANIFEST}); {rebuild}")
    try:
        table = pq.read_table(path, page_checksum_verification=True)
    except (OSError, pa.ArrowException) as error:
        raise TrustTraceError(f"{path}: unreadable shard ({str(error).splitlines()[0]}); {rebuild}") from None
    column = table.column("activation").combine_chunks()
    hidden = column.type.list_size
    activation = column.values.to_numpy(zero_copy_only=False).reshape(-1, hidden).astype(np.float32, copy=False)
    if not np.isfinite(activation).all():
        bad_rows = int((~np.isfinite(activation)).any(axis=1).sum())
        raise TrustTraceError(f"{path}: {bad_rows} rows hold NaN/inf activations (model overflow? try dtype float32)")
    return {
        "row_id": table.column("row_id").to_numpy(),
        "label": table.column("label").to_numpy().astype(np.int64),
        "split": np.asarray(table.column("split").to_pylist(), dtype=object),
        "activation": activation,
    }


SPLITS = ("train", "validation", "test")


def split_arrays(shard: dict[str, np.ndarray], split: str) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) of the rows of one split (``train``, ``validation`` or ``test``), in shard order."""
    if split not in SPLITS:
        raise TrustTraceError(f"unknown split {split!r} (one of {SPLITS})")
    rows = shard["split"] == split
    return shard["activation"][rows], shard["label"][rows]


def train_test(shard: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, y_train, X_test, y_test) of a shard, rows in shard order; validation rows are in neither."""
    return (*split_arrays(shard, "train"), *split_arrays(shard, "test"))
