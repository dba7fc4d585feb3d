"""Rule prepare_dimension: check, group, subsample and split one dimension's CSV; write its counts beside it."""

import json
import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from trusttrace.data import dimension_settings, prepare_dimension_with_report  # noqa: E402
from trusttrace.fetch import local_or_fetched  # noqa: E402
from trusttrace.io import setup_job_logging, write_json  # noqa: E402

smk = snakemake  # noqa: F821
setup_job_logging(smk.log[0])
csv = local_or_fetched(**smk.params.source)
frame, report = prepare_dimension_with_report(csv, **dimension_settings(smk.params.spec, smk.params.split))
report = {"dimension": smk.wildcards.dimension, **report}
table = pa.Table.from_pandas(frame, preserve_index=False)
table = table.replace_schema_metadata({**table.schema.metadata, b"trusttrace": json.dumps(report, sort_keys=True)})
pq.write_table(table, smk.output.data)
write_json(smk.output.report, report)
print(
    f"{report['rows']} rows in {report['n_groups']} groups; counts per split and label {report['counts']}; "
    f"{report['conflicting_statements']} conflicting statements ({report['conflict_rows_dropped']} rows dropped), "
    f"{report['duplicate_rows']} duplicate rows grouped",
    file=sys.stderr,
)
