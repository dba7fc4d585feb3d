"""Rules verify_checkpoint and check_checkpoint_integrity: no two checkpoints of a model may hold the same weights.

verify_checkpoint (wildcard ``checkpoint``) is the gate every job of that checkpoint waits for: it compares the
checkpoint with every checkpoint before it in config order and fails (``duplicate_weights: error``) or warns.
check_checkpoint_integrity writes the model's summary, ``_integrity.json``, from all records.
"""

import logging
import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from trusttrace.errors import TrustTraceError  # noqa: E402
from trusttrace.io import read_json, setup_job_logging, write_json  # noqa: E402
from trusttrace.models import duplicate_findings  # noqa: E402

smk = snakemake  # noqa: F821
setup_job_logging(smk.log[0])
model = smk.wildcards.model
records = [read_json(path) for path in smk.input.records]
checkpoint = getattr(smk.wildcards, "checkpoint", None)
findings = duplicate_findings(records)
if checkpoint is not None:
    findings = [f for f in findings if f["checkpoints"][1] == checkpoint]
if findings:
    listed = "; ".join(f"{a} = {b}: {f['shared']}" for f in findings for a, b in [f["checkpoints"]])
    message = (
        f"model {model!r}: checkpoints with identical weights: {listed} (a suite's branch may silently hold "
        "other weights; see EleutherAI/pythia issues #83, #198, #205)"
    )
    if smk.params.on_duplicate == "error":
        raise TrustTraceError(message + "; set duplicate_weights: warn to go on")
    logging.warning(message)
checks = sorted({record.get("duplicate_check", "files") for record in records})
if checkpoint is not None:
    content = {
        "model": model,
        "checkpoint": checkpoint,
        "compared_with": [record["checkpoint"] for record in records if record["checkpoint"] != checkpoint],
        "duplicate_check": checks,
        "duplicates": findings,
    }
else:
    content = {
        "model": model,
        "checkpoints": len(records),
        "duplicate_check": checks,
        "duplicates": [f["checkpoints"] for f in findings],
        "findings": findings,
    }
write_json(smk.output[0], content)
