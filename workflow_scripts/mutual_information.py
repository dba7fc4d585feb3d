"""Rule mutual_information: normalized HSIC I(X;T) and I(Y;T) for every layer of one checkpoint x dimension."""

import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from trusttrace.io import cell_json_name, setup_job_logging, write_cell  # noqa: E402
from trusttrace.mi import cell_metrics  # noqa: E402

smk = snakemake  # noqa: F821
setup_job_logging(smk.log[0])
settings = smk.params.settings
reference = smk.input.reference  # first_checkpoint: that checkpoint's activations (X); else an empty list
reference = reference if isinstance(reference, str) else (reference[0] if len(reference) else None)
metrics = cell_metrics(smk.input.shards, settings, reference_dir=reference)
output = Path(smk.output[0])
output.mkdir(parents=True, exist_ok=True)
for layer, values in metrics.items():
    keys = {**smk.params.cell, "layer": layer, **settings, "estimator": "nHSIC (Qian et al. 2024)"}
    write_cell(output / cell_json_name(layer), keys, lambda values=values: values)
