"""Rule materialise_checkpoint: a checkpoint's local copy (safetensors, compute dtype), read from its source once."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from trusttrace.io import read_json, setup_job_logging
from trusttrace.local_copy import materialise_checkpoint


def main(smk):
    setup_job_logging(smk.log[0])
    materialise_checkpoint(
        read_json(smk.input.record),
        smk.params.copy_settings,
        smk.output[0],
        threads=smk.threads,
        # From the config, not a param: a changed hub_cache must not remake copies (rules/extract.smk).
        hub_cache=smk.config["models"][smk.wildcards.model]["hub_cache"],
    )


main(snakemake)
