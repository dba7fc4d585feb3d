"""Rule probe: linear + mass-mean probes for every layer of one checkpoint x dimension."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from trusttrace.io import setup_job_logging, write_layer_cells
from trusttrace.probe import ProbeSettings, probe_cell
from trusttrace.shards import available_layers


def main(smk):
    setup_job_logging(smk.log[0])
    settings = ProbeSettings(**smk.params.settings)
    shards = smk.input[0]
    keys = {**smk.params.cell, **vars(settings)}
    write_layer_cells(smk.output[0], available_layers(shards), keys, lambda layer: probe_cell(shards, layer, settings))


main(snakemake)
