"""Rule plot_dimension: the four per-dimension figures of one model x dimension (PNG + SVG each)."""

import sys

import pandas as pd

sys.path.insert(0, snakemake.scriptdir)

from trusttrace import plots
from trusttrace.io import setup_job_logging


def main(smk):
    setup_job_logging(smk.log[0])
    plots.apply_style()
    model, dimension = smk.wildcards.model, smk.wildcards.dimension
    metrics, phases = pd.read_parquet(smk.input.metrics), pd.read_parquet(smk.input.phases)
    figures = {
        "heatmap": lambda: plots.accuracy_heatmap(metrics, model, dimension, pd.read_parquet(smk.input.degenerate)),
        "curves": lambda: plots.accuracy_curves(metrics, model, dimension),
        "information": lambda: plots.information_curves(metrics, phases, model, dimension),
        "plane": lambda: plots.information_plane(metrics, model, dimension),
    }
    for name, draw in figures.items():
        plots.save_figure(draw(), smk.output[name], smk.output[f"{name}_svg"])


main(snakemake)
