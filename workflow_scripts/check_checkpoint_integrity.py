"""Rule check_checkpoint_integrity: no two checkpoints of a model may hold the same weights."""

import logging
import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from trusttrace.errors import TrustTraceError  # noqa: E402
from trusttrace.io import read_json, setup_job_logging, write_json  # noqa: E402

smk = snakemake  # noqa: F821
setup_job_logging(smk.log[0])
records = [read_json(path) for path in smk.input]
by_hash = {}
for record in records:
    by_hash.setdefault(record["weights_sha256"], []).append(record["checkpoint"])
duplicates = [names for names in by_hash.values() if len(names) > 1]
if duplicates:
    message = (
        f"model {smk.wildcards.model!r}: checkpoints with identical weights: {duplicates} "
        "(a suite's branch may silently hold other weights; see EleutherAI/pythia issue #205)"
    )
    if smk.params.on_duplicate == "error":
        raise TrustTraceError(message + "; set duplicate_weights: warn to go on")
    logging.warning(message)
write_json(smk.output[0], {"model": smk.wildcards.model, "checkpoints": len(records), "duplicates": duplicates})
