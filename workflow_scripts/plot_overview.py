"""Rule plot_overview: every dimension of one model on one page (PNG + SVG)."""

import sys

import pandas as pd

sys.path.insert(0, snakemake.scriptdir)

from trusttrace import plots
from trusttrace.io import setup_job_logging


def main(smk):
    setup_job_logging(smk.log[0])
    plots.apply_style()
    figure = plots.overview(
        pd.read_parquet(smk.input.metrics),
        pd.read_parquet(smk.input.phases),
        smk.wildcards.model,
        smk.params.dimensions,
    )
    plots.save_figure(figure, smk.output.png, smk.output.svg)


main(snakemake)
