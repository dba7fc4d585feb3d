"""Rule mutual_information: normalized HSIC I(X;T) and I(Y;T) for every layer of one checkpoint x dimension."""

import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from trusttrace.errors import DegenerateCellError, TrustTraceError  # noqa: E402
from trusttrace.io import cell_json_name, setup_job_logging, write_cell  # noqa: E402
from trusttrace.mi import mi_metrics, stratified_subsample  # noqa: E402
from trusttrace.probe import standardize  # noqa: E402
from trusttrace.shards import available_layers, read_shard, train_test  # noqa: E402

smk = snakemake  # noqa: F821
setup_job_logging(smk.log[0])
settings, shards = smk.params.settings, smk.input[0]
_, y, _, _ = train_test(read_shard(shards, settings["input_layer"]))
rows = stratified_subsample(y, settings["max_samples"], settings["seed"])


def standardized_rows(layer):
    """The subsampled train rows of one layer, standardised (train statistics, as for the probe)."""
    X_train = train_test(read_shard(shards, layer))[0][rows]
    return standardize(X_train, X_train[:1])[0]


try:
    X = standardized_rows(settings["input_layer"])
except DegenerateCellError as error:
    raise TrustTraceError(f"mi.input_layer {settings['input_layer']} is constant in {shards} ({error}); choose another") from None
representations, degenerate = {}, {}
for layer in available_layers(shards):
    try:
        representations[layer] = standardized_rows(layer)
    except DegenerateCellError as error:
        degenerate[layer] = error
metrics = mi_metrics(
    X,
    representations,
    y[rows],
    sigma=settings["sigma"],
    lambda_factor=settings["lambda_factor"],
    median_lambda_factor=settings["median_lambda_factor"],
)


def layer_metrics(layer):
    if layer in degenerate:
        raise degenerate[layer]
    return metrics[layer]


output = Path(smk.output[0])
output.mkdir(parents=True, exist_ok=True)
for layer in available_layers(shards):
    keys = {**smk.params.cell, "layer": layer, **settings, "m": int(len(rows)), "estimator": "nHSIC (Qian et al. 2024)"}
    write_cell(output / cell_json_name(layer), keys, lambda: layer_metrics(layer))
