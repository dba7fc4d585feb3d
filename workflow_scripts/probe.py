"""Rule probe: linear + mass-mean probes for every layer of one checkpoint x dimension."""

import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821

from trusttrace.io import cell_json_name, setup_job_logging, write_cell  # noqa: E402
from trusttrace.probe import ProbeSettings, probe_cell  # noqa: E402
from trusttrace.shards import available_layers  # noqa: E402

smk = snakemake  # noqa: F821
setup_job_logging(smk.log[0])
settings = ProbeSettings(**smk.params.settings)
output = Path(smk.output[0])
output.mkdir(parents=True, exist_ok=True)
for layer in available_layers(smk.input[0]):
    write_cell(
        output / cell_json_name(layer),
        {**smk.params.cell, "layer": layer, **vars(settings)},
        lambda: probe_cell(smk.input[0], layer, settings),
    )
