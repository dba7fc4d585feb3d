"""Rule plot_steering: likelihood-margin change vs the vector's source checkpoint, one line per alpha."""

import sys

import pandas as pd

sys.path.insert(0, snakemake.scriptdir)

from trusttrace import plots
from trusttrace.io import setup_job_logging


def main(smk):
    setup_job_logging(smk.log[0])
    plots.apply_style()
    figure = plots.steering_effect(
        pd.read_parquet(smk.input.metrics), smk.wildcards.model, smk.wildcards.dimension, target=smk.params.target
    )
    plots.save_figure(figure, smk.output.png, smk.output.svg)


main(snakemake)
