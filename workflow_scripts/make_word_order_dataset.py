"""Rule demo_word_order: write the word_order positive control (sentences of the pre-training corpus) as CSV."""

import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821 (the snakemake object is injected by Snakemake)

from trusttrace.demo_data import generate_word_order
from trusttrace.io import setup_job_logging

setup_job_logging(snakemake.log[0])  # noqa: F821
corpus = Path(snakemake.input.corpus).read_text(encoding="utf-8")  # noqa: F821
frame = generate_word_order(corpus, n=int(snakemake.wildcards.n), seed=snakemake.params.seed)  # noqa: F821
frame.to_csv(snakemake.output[0], index=False)  # noqa: F821
