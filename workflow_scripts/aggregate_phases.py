"""Rule aggregate_phases: metrics table -> results/tables/phases.{parquet,csv} (fitting and compression of I(X;T))."""

import logging
import sys

import pandas as pd

sys.path.insert(0, snakemake.scriptdir)

from trusttrace.aggregate import write_table
from trusttrace.io import setup_job_logging
from trusttrace.phases import PHASES_SCHEMA, phases_table


def main(smk):
    setup_job_logging(smk.log[0])
    phases = phases_table(pd.read_parquet(smk.input.metrics), input_reference=smk.params.input_reference)
    write_table(phases, PHASES_SCHEMA, smk.output.parquet, smk.output.csv)
    logging.info(
        "%d (model, dimension, layer) curves: fitting in %d, compression in %d",
        len(phases),
        int(phases["fitting"].sum()),
        int(phases["compression"].sum()),
    )


main(snakemake)
