"""Rule plot_pretrain_loss: pre-training loss vs step of one pre-trained model (PNG + SVG)."""

import sys

import pandas as pd

sys.path.insert(0, snakemake.scriptdir)

from trusttrace import plots
from trusttrace.io import setup_job_logging


def main(smk):
    setup_job_logging(smk.log[0])
    plots.apply_style()
    figure = plots.pretrain_loss(pd.read_parquet(smk.input.loss), smk.wildcards.model, smk.params.checkpoint_steps)
    plots.save_figure(figure, smk.output.png, smk.output.svg)


main(snakemake)
