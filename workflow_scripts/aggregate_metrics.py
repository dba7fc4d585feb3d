"""Rule aggregate_metrics: every probe, MI and steering cell -> results/tables/metrics.{parquet,csv} and the list of
degenerate cells."""

import logging
import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from trusttrace.aggregate import (  # noqa: E402
    DEGENERATE_SCHEMA,
    METRICS_SCHEMA,
    degenerate_table,
    metrics_table,
    read_cells,
    write_table,
)
from trusttrace.io import setup_job_logging  # noqa: E402

smk = snakemake  # noqa: F821
setup_job_logging(smk.log[0])
records = []
for source in ("probe", "mi", "steering"):
    records += read_cells(smk.input.get(source, []), source)
metrics = metrics_table(records)
degenerate = degenerate_table(records)
write_table(metrics, METRICS_SCHEMA, smk.output.parquet, smk.output.csv)
write_table(degenerate, DEGENERATE_SCHEMA, smk.output.degenerate, smk.output.degenerate_csv)
logging.info("%d cell files -> %d metric rows, %d degenerate cells", len(records), len(metrics), len(degenerate))
