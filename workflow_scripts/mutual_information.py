"""Rule mutual_information: normalized HSIC I(X;T) and I(Y;T) for every layer of one checkpoint x dimension."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from trusttrace.io import setup_job_logging, write_layer_cells
from trusttrace.mi import cell_metrics


def main(smk):
    setup_job_logging(smk.log[0])
    settings = smk.params.settings
    # first_checkpoint: that checkpoint's activations are X; same_checkpoint: no reference input.
    reference = smk.input.reference
    reference = reference if isinstance(reference, str) else (reference[0] if len(reference) else None)
    metrics = cell_metrics(smk.input.shards, settings, reference_dir=reference)
    keys = {**smk.params.cell, **settings, "estimator": "nHSIC (Qian et al. 2024)"}
    write_layer_cells(smk.output[0], metrics, keys, metrics.__getitem__)


main(snakemake)
