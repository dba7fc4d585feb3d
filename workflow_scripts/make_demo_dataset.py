"""Rule demo_dataset: write a built-in demo dimension as CSV."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from trusttrace.demo_data import generate_demo_dimension
from trusttrace.io import setup_job_logging


def main(smk):
    setup_job_logging(smk.log[0])
    frame = generate_demo_dimension(smk.wildcards.demo, n=int(smk.wildcards.n), seed=smk.params.seed)
    frame.to_csv(smk.output[0], index=False)


main(snakemake)
