"""Rule resolve_checkpoint: where a checkpoint's files are, its commit, weight hash and layer count."""

import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from trusttrace.config import layer_count  # noqa: E402
from trusttrace.errors import TrustTraceError  # noqa: E402
from trusttrace.io import setup_job_logging, write_json  # noqa: E402
from trusttrace.models import checkpoint_location, checkpoint_record, resolve_checkpoint_files  # noqa: E402

smk = snakemake  # noqa: F821
setup_job_logging(smk.log[0])
spec = {**smk.params.spec, "checkpoints": [smk.params.cell]}
name = smk.wildcards.checkpoint
location, revision = checkpoint_location(spec, name, pretrain_dir=(smk.input[0] if smk.input else None))
directory, commit = resolve_checkpoint_files(
    location, revision, model_name=smk.wildcards.model, allow_pickle_weights=spec["allow_pickle_weights"]
)
record = checkpoint_record(directory, commit, smk.params.duplicate_check)
num_layers = layer_count(Path(directory) / "config.json")
if num_layers is None:
    raise TrustTraceError(f"{directory}/config.json: no num_hidden_layers; cannot tell the layer count")
where = f"model {smk.wildcards.model!r} checkpoint {name!r}"
layers = smk.params.layers
if layers != "all" and max(layers) > num_layers:
    raise TrustTraceError(f"config error at layers: {max(layers)} out of range for {where} (hidden states 0..{num_layers})")
if smk.params.mi_input_layer > num_layers:
    raise TrustTraceError(f"config error at mi.input_layer: out of range for {where} (hidden states 0..{num_layers})")
write_json(
    smk.output[0],
    {
        "model": smk.wildcards.model,
        "checkpoint": name,
        "source": spec["source"],
        "load_from": location,
        "revision": commit or revision,
        "requested_revision": revision,
        "num_layers": num_layers,
        **record,
    },
)
