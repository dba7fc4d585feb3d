"""Rule aggregate_findings: metrics + phases tables -> results/tables/findings.{parquet,csv}."""

import sys

import pandas as pd

sys.path.insert(0, snakemake.scriptdir)

from trusttrace.aggregate import write_table
from trusttrace.findings import FINDINGS_SCHEMA, findings_table
from trusttrace.io import setup_job_logging


def main(smk):
    setup_job_logging(smk.log[0])
    findings = findings_table(
        pd.read_parquet(smk.input.metrics), pd.read_parquet(smk.input.phases), ci_level=smk.params.ci_level
    )
    write_table(findings, FINDINGS_SCHEMA, smk.output.parquet, smk.output.csv)


main(snakemake)
