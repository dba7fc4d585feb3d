"""Rule aggregate_metrics: every probe, MI and steering cell -> results/tables/metrics.{parquet,csv} and the list of
degenerate cells."""

import logging
import sys

sys.path.insert(0, snakemake.scriptdir)

from trusttrace import aggregate
from trusttrace.io import setup_job_logging


def main(smk):
    setup_job_logging(smk.log[0])
    records = []
    for source in ("probe", "mi", "steering"):
        records += aggregate.read_cells(smk.input.get(source, []), source)
    metrics = aggregate.metrics_table(records)
    degenerate = aggregate.degenerate_table(records)
    aggregate.write_table(metrics, aggregate.METRICS_SCHEMA, smk.output.parquet, smk.output.csv)
    aggregate.write_table(degenerate, aggregate.DEGENERATE_SCHEMA, smk.output.degenerate, smk.output.degenerate_csv)
    logging.info("%d cell files -> %d metric rows, %d degenerate cells", len(records), len(metrics), len(degenerate))


main(snakemake)
