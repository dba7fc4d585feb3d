"""Rule pretrain_corpus: the offline pre-training text."""

import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from trusttrace.demo_data import demo_statements_for_corpus  # noqa: E402
from trusttrace.io import setup_job_logging  # noqa: E402
from trusttrace.pretrain import build_corpus  # noqa: E402

setup_job_logging(snakemake.log[0])  # noqa: F821
corpus = build_corpus(demo_statements_for_corpus(seed=0))
with open(snakemake.output[0], "w", encoding="utf-8") as handle:  # noqa: F821
    handle.write(corpus)
print(f"corpus: {len(corpus)} characters", file=sys.stderr)
