"""Rule resolve_checkpoint: where a checkpoint's files are, its commit, weight hashes and layer count."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from trusttrace.io import setup_job_logging, write_json
from trusttrace.models import resolve_record


def main(smk):
    setup_job_logging(smk.log[0])
    spec = {**smk.params.spec, "checkpoints": [smk.params.cell], "duplicate_check": smk.params.duplicate_check}
    record = resolve_record(
        smk.wildcards.model,
        smk.wildcards.checkpoint,
        spec,
        pretrain_dir=smk.input[0] if smk.input else None,
        layer_settings=smk.params.layer_settings,
    )
    write_json(smk.output[0], record)


main(snakemake)
