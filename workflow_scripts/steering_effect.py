"""Rule steering_effect: one source checkpoint's vectors, every dimension, on the target loaded once."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from trusttrace.io import read_json, setup_job_logging
from trusttrace.models import load_recorded
from trusttrace.steering import write_checkpoint_steering


def main(smk):
    setup_job_logging(smk.log[0])
    target = read_json(smk.input.target)
    model, tokenizer = load_recorded(
        target, smk.params.target_spec, threads=smk.threads, local_copy=smk.input.target_copy
    )
    write_checkpoint_steering(
        *(model, tokenizer, smk.params.dimensions),
        data=list(smk.input.data),
        vectors=list(smk.input.vectors),
        outputs=list(smk.output),
        settings=smk.params.steering,
        encoding=smk.params.encoding,
        spec=smk.params.target_spec,
        target=target,
    )


main(snakemake)
