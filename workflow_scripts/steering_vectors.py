"""Rule steering_vectors: one difference-of-means steering vector per layer (safetensors + a metrics file)."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from trusttrace.io import setup_job_logging
from trusttrace.steering import write_vector_cells


def main(smk):
    setup_job_logging(smk.log[0])
    write_vector_cells(smk.input[0], smk.output[0], smk.params.cell, smk.params.trustworthy_label)


main(snakemake)
