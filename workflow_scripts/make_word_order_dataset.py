"""Rule demo_word_order: write the word_order positive control (sentences of the pre-training corpus) as CSV."""

import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)

from trusttrace.demo_data import generate_word_order
from trusttrace.io import setup_job_logging


def main(smk):
    setup_job_logging(smk.log[0])
    corpus = Path(smk.input.corpus).read_text(encoding="utf-8")
    frame = generate_word_order(corpus, n=int(smk.wildcards.n), seed=smk.params.seed)
    frame.to_csv(smk.output[0], index=False)


main(snakemake)
