"""Rule pretrain_corpus: the offline pre-training text."""

import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)

from trusttrace.demo_data import demo_statements_for_corpus
from trusttrace.io import setup_job_logging
from trusttrace.pretrain import build_corpus


def main(smk):
    setup_job_logging(smk.log[0])
    corpus = build_corpus(demo_statements_for_corpus(seed=0))
    Path(smk.output[0]).write_text(corpus, encoding="utf-8")
    print(f"corpus: {len(corpus)} characters", file=sys.stderr)


main(snakemake)
