"""trusttrace.results on the shared tiny run: tables, activations equal to the shards, vectors, clear errors."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from helpers import REPO, tiny_workflow
from trusttrace import results
from trusttrace.errors import TrustTraceError
from trusttrace.shards import read_shard

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_workflow(tmp_path_factory) / "results"


def test_tables(run):
    metrics = results.metrics(run)
    assert {"model", "checkpoint", "dimension", "layer", "metric", "value", "ci_low", "ci_high"} <= set(metrics)
    assert set(results.findings(run)["dimension"]) == set(metrics["dimension"])
    assert {"fitting", "compression"} <= set(results.phases(run).columns)


def test_activations_match_the_shard_and_carry_statements(run):
    X, rows = results.activations("tiny", "step8", "reliability", 2, run)
    shard = read_shard(run / "activations" / "tiny" / "step8" / "reliability", 2)
    np.testing.assert_array_equal(X, shard["activation"])
    assert X.dtype == np.float32 and X.shape[0] == len(rows)
    assert rows["row_id"].tolist() == shard["row_id"].tolist()
    data = pd.read_parquet(run / "data" / "reliability.parquet").set_index("row_id")
    assert rows["statement"].tolist() == data.loc[rows["row_id"], "statement"].tolist()
    assert set(rows["split"]) <= {"train", "validation", "test"}


def test_steering_vector_and_metadata(run):
    vector, info = results.steering_vector("tiny", "step8", "reliability", 1, run)
    assert vector.shape == (32,) and vector.dtype == np.float32
    assert np.linalg.norm(vector) == pytest.approx(info["projection_std"], rel=1e-5)
    assert info["checkpoint"] == "step8" and info["layer"] == 1


def test_missing_cell_names_what_exists(run):
    with pytest.raises(TrustTraceError, match=r"step0, step8"):
        results.activations("tiny", "step9", "reliability", 1, run)
    with pytest.raises(TrustTraceError, match=r"layer=0\.parquet, layer=1\.parquet"):
        results.activations("tiny", "step8", "reliability", 7, run)
    with pytest.raises(TrustTraceError, match="no findings table"):
        results.findings(run / "nowhere")


def test_corrupt_shard_is_refused(run, tmp_path):
    copy = tmp_path / "results"
    shutil.copytree(run / "activations", copy / "activations")
    shard = copy / "activations" / "tiny" / "step8" / "reliability" / "layer=1.parquet"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(TrustTraceError, match="corrupt shard"):
        results.activations("tiny", "step8", "reliability", 1, copy)


def test_example_script_runs(run, tmp_path):
    figure = tmp_path / "explore.png"
    done = subprocess.run(
        [sys.executable, str(REPO / "docs" / "examples" / "explore.py"), str(run), str(figure)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "own probe test accuracy" in done.stdout and figure.stat().st_size > 5000


def test_api_does_not_import_torch():
    code = "import sys, trusttrace.results; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_activation_dataset_with_keys_in_duckdb_polars_and_pyarrow(run):
    """Every shard of the run read at once, keys recovered as columns; the mean norm equals numpy's."""
    duckdb = pytest.importorskip("duckdb")
    polars = pytest.importorskip("polars")
    import pyarrow.dataset as ds

    pattern = str(run / "activations" / "**" / "*.parquet")
    norms = duckdb.sql(
        f"SELECT model, checkpoint, dimension, layer, avg(sqrt(list_inner_product(activation::FLOAT[], "
        f"activation::FLOAT[]))) AS mean_norm, count(*) AS n FROM read_parquet('{pattern}') "
        "GROUP BY ALL ORDER BY checkpoint, layer"
    ).df()
    assert set(norms["checkpoint"]) == {"step0", "step8"} and set(norms["dimension"]) == {"reliability"}
    X, _ = results.activations("tiny", "step8", "reliability", 2, run)
    expected = float(np.linalg.norm(X.astype(np.float64), axis=1).mean())
    got = norms[(norms["checkpoint"] == "step8") & (norms["layer"] == 2)]["mean_norm"].item()
    assert got == pytest.approx(expected, rel=1e-5)
    frame = polars.scan_parquet(pattern).group_by("checkpoint", "layer").len().collect()
    assert frame.height == len(norms) and int(frame["len"].sum()) == int(norms["n"].sum())
    dataset = ds.dataset(sorted((run / "activations").rglob("*.parquet")), format="parquet")
    assert set(dataset.schema.names) >= {"model", "checkpoint", "dimension", "layer", "row_id", "activation"}
