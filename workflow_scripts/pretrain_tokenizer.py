"""Rule pretrain_tokenizer: train the BPE tokenizer and encode the corpus to a token stream."""

import sys

import numpy as np

sys.path.insert(0, snakemake.scriptdir)

from trusttrace.io import setup_job_logging
from trusttrace.pretrain import encode_corpus, train_tokenizer


def main(smk):
    setup_job_logging(smk.log[0])
    corpus = open(smk.input.corpus, encoding="utf-8").read()
    train_tokenizer(corpus, smk.params.vocab_size, smk.output.tokenizer)
    tokens = encode_corpus(corpus, smk.output.tokenizer)
    np.save(smk.output.tokens, tokens, allow_pickle=False)
    print(f"{len(tokens)} tokens", file=sys.stderr)


main(snakemake)
