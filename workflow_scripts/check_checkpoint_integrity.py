"""Rules verify_checkpoint and check_checkpoint_integrity: no two checkpoints of a model may hold the same weights.

verify_checkpoint (wildcard ``checkpoint``) is the gate every job of that checkpoint waits for: it compares the
checkpoint with every checkpoint before it in config order and fails (``duplicate_weights: error``) or warns.
check_checkpoint_integrity writes the model's summary, ``_integrity.json``, from all records.
"""

import sys

sys.path.insert(0, snakemake.scriptdir)

from trusttrace.io import read_json, setup_job_logging, write_json
from trusttrace.models import integrity_record


def main(smk):
    setup_job_logging(smk.log[0])
    records = [read_json(path) for path in smk.input.records]
    checkpoint = getattr(smk.wildcards, "checkpoint", None)
    write_json(smk.output[0], integrity_record(smk.wildcards.model, records, smk.params.on_duplicate, checkpoint))


main(snakemake)
