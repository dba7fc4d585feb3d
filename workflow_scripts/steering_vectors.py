"""Rule steering_vectors: one difference-of-means steering vector per layer (safetensors + a metrics file)."""

import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from trusttrace.io import cell_json_name, setup_job_logging, write_cell  # noqa: E402
from trusttrace.shards import available_layers, read_shard, split_arrays  # noqa: E402
from trusttrace.steering import save_vectors, steering_vector  # noqa: E402

smk = snakemake  # noqa: F821
setup_job_logging(smk.log[0])
output = Path(smk.output[0])
output.mkdir(parents=True, exist_ok=True)


def build_and_save(layer):
    X_train, y_train = split_arrays(read_shard(smk.input[0], layer), "train")  # never validation or test rows
    vector, info = steering_vector(X_train, y_train, smk.params.trustworthy_label)
    save_vectors(output / f"layer={layer}.safetensors", {layer: vector}, {**smk.params.cell, "layer": layer, **info})
    return info


for layer in available_layers(smk.input[0]):
    write_cell(output / cell_json_name(layer), {**smk.params.cell, "layer": layer}, lambda layer=layer: build_and_save(layer))
