"""Rule extract_activations: one forward pass per batch, one Parquet shard per layer, then the manifest."""

import sys

import pandas as pd

sys.path.insert(0, snakemake.scriptdir)

from trusttrace.config import selected_layers
from trusttrace.extract import write_activation_shards
from trusttrace.io import read_json, setup_job_logging
from trusttrace.models import load_recorded


def main(smk):
    setup_job_logging(smk.log[0])
    record = read_json(smk.input.record)
    model, tokenizer = load_recorded(record, smk.params.spec, threads=smk.threads, local_copy=smk.input.local_copy)
    data = pd.read_parquet(smk.input.data)
    write_activation_shards(
        *(model, tokenizer, data, smk.output[0]),
        layers=selected_layers({"layers": smk.params.layers}, record["num_layers"]),
        extraction=smk.params.extraction,
        batch_size=smk.params.spec["batch_size"],
        cell=smk.params.cell,
        record=record,
    )


main(snakemake)
