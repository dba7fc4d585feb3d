"""TrustTrace: trace trustworthiness representations over pre-training checkpoints.

The library is plain numpy/torch in, numpy/tables out; the Snakemake rule scripts in ``workflow_scripts/`` only
read ``snakemake.input/output/params`` and call it. Modules that need no torch never import it, so per-cell jobs
start fast.
"""

from trusttrace.errors import TrustTraceError

__all__ = ["TrustTraceError"]
