"""Rule mutual_information: normalized HSIC I(X;T) and I(Y;T) for every layer of one checkpoint x dimension."""

import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from trusttrace.io import cell_json_name, setup_job_logging, write_json  # noqa: E402
from trusttrace.mi import mi_metrics, stratified_subsample  # noqa: E402
from trusttrace.probe import standardize  # noqa: E402
from trusttrace.shards import available_layers, read_shard, train_test  # noqa: E402

smk = snakemake  # noqa: F821
setup_job_logging(smk.log[0])
settings = smk.params.settings
shards = smk.input[0]


def train_rows(layer):
    X_train, y_train, _, _ = train_test(read_shard(shards, layer))
    return X_train, y_train


X, y = train_rows(settings["input_layer"])
rows = stratified_subsample(y, settings["max_samples"], settings["seed"])
X, y = standardize(X[rows], X[rows][:1])[0], y[rows]
representations = {layer: standardize(train_rows(layer)[0][rows], X[:1])[0] for layer in available_layers(shards)}
metrics = mi_metrics(X, representations, y, sigma=settings["sigma"], lambda_factor=settings["lambda_factor"])
output = Path(smk.output[0])
output.mkdir(parents=True, exist_ok=True)
for layer, values in metrics.items():
    write_json(
        output / cell_json_name(layer),
        {**smk.params.cell, "layer": layer, **settings, "m": int(len(rows)), "estimator": "nHSIC (Qian et al. 2024)", **values},
    )
