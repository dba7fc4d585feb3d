"""Rule aggregate_pretrain_loss: per-checkpoint loss TSVs -> results/tables/pretrain_loss.{parquet,csv}."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from trusttrace.aggregate import LOSS_SCHEMA, pretrain_loss_table, write_table
from trusttrace.io import setup_job_logging


def main(smk):
    setup_job_logging(smk.log[0])
    files = {tuple(cell): path for cell, path in zip(smk.params.cells, smk.input, strict=False)}
    loss = pretrain_loss_table(files, smk.params.tokens_per_step)
    write_table(loss, LOSS_SCHEMA, smk.output.parquet, smk.output.csv)


main(snakemake)
