"""Rule aggregate_summary: tables -> results/summary.md (key findings per model x dimension)."""

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from trusttrace.io import setup_job_logging  # noqa: E402
from trusttrace.summary import summary_markdown  # noqa: E402

smk = snakemake  # noqa: F821
setup_job_logging(smk.log[0])
text = summary_markdown(
    pd.read_parquet(smk.input.metrics), pd.read_parquet(smk.input.phases), pd.read_parquet(smk.input.degenerate)
)
Path(smk.output[0]).write_text(text)
