"""Rule aggregate_summary: findings (+ metrics, phases, degenerate cells) -> results/summary.md."""

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, snakemake.scriptdir)

from trusttrace.io import setup_job_logging
from trusttrace.summary import summary_markdown


def main(smk):
    setup_job_logging(smk.log[0])
    tables = {name: pd.read_parquet(path) for name, path in smk.input.items()}
    text = summary_markdown(
        tables["findings"], tables["metrics"], tables["phases"], tables["degenerate"], ci_level=smk.params.ci_level
    )
    Path(smk.output[0]).write_text(text)


main(snakemake)
