"""Rule steering_effect: add one source checkpoint's vectors to the target model and score the evaluation
statements (validation and test rows) with the controls of trusttrace.steering.evaluate_cell."""

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from trusttrace.config import steering_layers  # noqa: E402
from trusttrace.errors import DegenerateCellError, TrustTraceError  # noqa: E402
from trusttrace.io import cell_json_name, read_json, setup_job_logging, write_cell  # noqa: E402
from trusttrace.models import load_model_and_tokenizer, resolve_device  # noqa: E402
from trusttrace.steering import evaluate_cell, evaluation_rows, load_vectors  # noqa: E402

smk = snakemake  # noqa: F821
setup_job_logging(smk.log[0])
import torch  # noqa: E402

torch.set_num_threads(smk.threads)
settings, spec, target = smk.params.steering, smk.params.target_spec, read_json(smk.input.target)
encoding = smk.params.encoding
vectors_dir = Path(smk.input.vectors)
source_layers = sorted(int(p.stem.split("=")[1]) for p in vectors_dir.glob("layer=*.json"))
layers = steering_layers({"steering": settings}, max(source_layers))
missing = sorted(set(layers) - set(source_layers))
if missing:
    raise TrustTraceError(f"steering.layers: {missing} have no steering vector (extracted layers: {source_layers})")

rows, on_test_half = evaluation_rows(
    pd.read_parquet(smk.input.data), seed=settings["seed"], max_statements=settings["max_statements"]
)
model, tokenizer = load_model_and_tokenizer(
    target["load_from"],
    target["revision"] if target["source"] == "hf" else None,
    model_name=target["model"],
    dtype=spec["dtype"],
    device=resolve_device(spec["device"]),
    trust_remote_code=spec["trust_remote_code"],
    allow_pickle_weights=spec["allow_pickle_weights"],
)


def steer(layer):
    vector_file = vectors_dir / f"layer={layer}.safetensors"
    if not vector_file.is_file():
        raise DegenerateCellError(read_json(vectors_dir / cell_json_name(layer))["degenerate"])
    result = evaluate_cell(
        model,
        tokenizer,
        rows["statement"].tolist(),
        rows["label"].to_numpy(),
        rows["eval_split"].to_numpy(),
        smk.params.trustworthy_label,
        load_vectors(vector_file)[layer],
        layer,
        settings["alphas"],
        prompt=smk.params.prompt,
        chat=spec["chat"],
        positions=settings["positions"],
        n_random=settings["n_random"],
        n_bootstrap=settings["n_bootstrap"],
        seed=settings["seed"],
        special_tokens=encoding["special_tokens"],
        max_length=encoding["max_length"],
        batch_size=spec["batch_size"],
    )
    return {**result, "selection_on_test_half": on_test_half}


output = Path(smk.output[0])
output.mkdir(parents=True, exist_ok=True)
for layer in layers:
    keys = {
        **smk.params.cell,
        "layer": layer,
        "target_model": target["model"],
        "target_checkpoint": target["checkpoint"],
        "n_validation": int((rows["eval_split"] == "validation").sum()),
        "n_test": int((rows["eval_split"] == "test").sum()),
        "trustworthy_label": smk.params.trustworthy_label,
    }
    write_cell(output / cell_json_name(layer), keys, lambda layer=layer: steer(layer))
