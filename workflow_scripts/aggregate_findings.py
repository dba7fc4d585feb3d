"""Rule aggregate_findings: metrics + phases tables -> results/tables/findings.{parquet,csv}."""

import sys

import pandas as pd

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from trusttrace.aggregate import write_table  # noqa: E402
from trusttrace.findings import FINDINGS_SCHEMA, findings_table  # noqa: E402
from trusttrace.io import setup_job_logging  # noqa: E402

smk = snakemake  # noqa: F821
setup_job_logging(smk.log[0])
findings = findings_table(
    pd.read_parquet(smk.input.metrics), pd.read_parquet(smk.input.phases), ci_level=smk.params.ci_level
)
write_table(findings, FINDINGS_SCHEMA, smk.output.parquet, smk.output.csv)
