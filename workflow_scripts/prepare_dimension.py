"""Rule prepare_dimension: check, subsample and split one dimension's CSV."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from trusttrace.data import prepare_dimension  # noqa: E402
from trusttrace.io import setup_job_logging  # noqa: E402

smk = snakemake  # noqa: F821
setup_job_logging(smk.log[0])
spec, split = smk.params.spec, smk.params.split
frame = prepare_dimension(
    smk.input[0],
    text_column=spec["text_column"],
    label_column=spec["label_column"],
    max_samples=spec["max_samples"],
    test_fraction=split["test_fraction"],
    seed=split["seed"],
)
frame.to_parquet(smk.output[0], index=False)
print(f"{len(frame)} rows; split counts {frame['split'].value_counts().to_dict()}", file=sys.stderr)
