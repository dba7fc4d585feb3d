"""Rule pretrain_checkpoint: train one segment and save the checkpoint."""

import sys

import numpy as np
import pandas as pd

sys.path.insert(0, snakemake.scriptdir)

from trusttrace.io import setup_job_logging
from trusttrace.pretrain import train_segment


def main(smk):
    setup_job_logging(smk.log[0])
    losses = train_segment(
        settings=smk.params.settings,
        tokenizer_dir=smk.input.tokenizer,
        token_stream=np.load(smk.input.tokens, allow_pickle=False),
        target_step=smk.params.step,
        output_dir=smk.output.checkpoint,
        previous_dir=smk.input.previous or None,
        threads=smk.threads,
    )
    pd.DataFrame(losses, columns=["step", "loss", "lr"]).to_csv(smk.output.losses, sep="\t", index=False)


main(snakemake)
