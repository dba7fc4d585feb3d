"""Rule extract_activations: one forward pass per batch, one Parquet shard per layer."""

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from trusttrace.config import selected_layers  # noqa: E402
from trusttrace.extract import check_truncation, extract_token_ids  # noqa: E402
from trusttrace.io import read_json, setup_job_logging  # noqa: E402
from trusttrace.models import load_model_and_tokenizer, resolve_device  # noqa: E402
from trusttrace.shards import shard_name, write_manifest, write_shard  # noqa: E402
from trusttrace.tokens import encode_statements  # noqa: E402

smk = snakemake  # noqa: F821
setup_job_logging(smk.log[0])
import torch  # noqa: E402

torch.set_num_threads(smk.threads)
spec, extraction, record = smk.params.spec, smk.params.extraction, read_json(smk.input.record)
data = pd.read_parquet(smk.input.data)
model, tokenizer = load_model_and_tokenizer(
    record["load_from"],
    record["revision"] if record["source"] == "hf" else None,
    model_name=smk.wildcards.model,
    dtype=spec["dtype"],
    device=resolve_device(spec["device"]),
    trust_remote_code=spec["trust_remote_code"],
    allow_pickle_weights=spec["allow_pickle_weights"],
)
layers = selected_layers({"layers": smk.params.layers}, record["num_layers"])
# Tokenise first: too many statements cut to max_length fail here, before any forward pass.
input_ids, truncated = encode_statements(
    tokenizer,
    data["statement"].tolist(),
    special_tokens=extraction["special_tokens"],
    max_length=extraction["max_length"],
)
n_truncated = check_truncation(
    truncated,
    extraction["max_length"],
    extraction["max_truncated_fraction"],
    f"{smk.wildcards.model}/{smk.wildcards.checkpoint}/{smk.wildcards.dimension}",
)
states = extract_token_ids(
    model, tokenizer, input_ids, layers, batch_size=spec["batch_size"], token=extraction["token"]
)
output = Path(smk.output[0])
output.mkdir(parents=True, exist_ok=True)
metadata = {
    **smk.params.cell,
    "token": extraction["token"],
    "special_tokens": extraction["special_tokens"],
    "max_length": extraction["max_length"],
    "weights_sha256": record["weights_sha256"],
}
digests = {}
for layer in layers:
    digests[layer] = write_shard(
        output / shard_name(layer),
        data["row_id"].to_numpy(),
        data["label"].to_numpy(),
        data["split"].to_numpy(),
        states[layer].astype(extraction["dtype"]),
        {**metadata, "layer": layer},
        keys={**smk.params.cell, "layer": layer},
    )
# The manifest comes last: a directory without one is an unfinished extraction.
write_manifest(
    output,
    digests,
    {**metadata, "rows": len(data), "n_truncated": n_truncated, "num_layers": record["num_layers"]},
)
