"""Rule prepare_dimension: check, group, subsample and split one dimension's CSV; write its counts beside it."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from trusttrace.data import dimension_settings, prepare_dimension_with_report, write_prepared
from trusttrace.fetch import local_or_fetched
from trusttrace.io import setup_job_logging


def main(smk):
    setup_job_logging(smk.log[0])
    csv = local_or_fetched(**smk.params.source)  # with a url: downloaded once and verified
    frame, report = prepare_dimension_with_report(csv, **dimension_settings(smk.params.spec, smk.params.split))
    report = {"dimension": smk.wildcards.dimension, **report}
    write_prepared(frame, report, smk.output.data, smk.output.report)
    print(
        f"{report['rows']} rows in {report['n_groups']} groups; counts per split and label {report['counts']}; "
        f"{report['conflicting_statements']} conflicting statements ({report['conflict_rows_dropped']} rows "
        f"dropped), {report['duplicate_rows']} duplicate rows grouped",
        file=sys.stderr,
    )


main(snakemake)
