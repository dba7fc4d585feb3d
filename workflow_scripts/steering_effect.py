"""Rule steering_effect: one source checkpoint's vectors added to the target, scored with controls."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from trusttrace.io import read_json, setup_job_logging
from trusttrace.models import load_recorded
from trusttrace.steering import write_steering_cells


def main(smk):
    setup_job_logging(smk.log[0])
    target = read_json(smk.input.target)
    model, tokenizer = load_recorded(target, smk.params.target_spec, threads=smk.threads)
    write_steering_cells(
        *(model, tokenizer, smk.input.data, smk.input.vectors, smk.output[0]),
        settings=smk.params.steering,
        encoding=smk.params.encoding,
        spec=smk.params.target_spec,
        cell=smk.params.cell,
        target=target,
        trustworthy_label=smk.params.trustworthy_label,
        prompt=smk.params.prompt,
    )


main(snakemake)
