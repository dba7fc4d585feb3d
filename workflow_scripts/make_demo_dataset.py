"""Rule demo_dataset: write a built-in demo dimension as CSV."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821 (the snakemake object is injected by Snakemake)

from trusttrace.demo_data import generate_demo_dimension  # noqa: E402
from trusttrace.io import setup_job_logging  # noqa: E402

setup_job_logging(snakemake.log[0])  # noqa: F821
frame = generate_demo_dimension(snakemake.wildcards.demo, n=int(snakemake.wildcards.n), seed=snakemake.params.seed)  # noqa: F821
frame.to_csv(snakemake.output[0], index=False)  # noqa: F821
