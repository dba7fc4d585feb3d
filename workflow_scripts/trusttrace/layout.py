"""Where every result lives: one home for each results path and its parsing.

The rules (``rules/*.smk``), the rule scripts and the Python API (``trusttrace.results``) build paths here, so a
layout change is one edit. Patterns use Snakemake's ``{wildcard}`` syntax and are filled with ``str.format``.
No torch, no snakemake imports.
"""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = "results"

DATA = "{results}/data/{dimension}.parquet"
MODEL_RECORD = "{results}/models/{model}/{checkpoint}.json"
# A checkpoint's fast-loading local copy (safetensors in the compute dtype), made from its record and removed by
# Snakemake (temp) once every job that loads it is done.
LOCAL_COPY = "{results}/local_copies/{model}/{checkpoint}"
ACTIVATIONS = "{results}/activations/{model}/{checkpoint}/{dimension}"
# Per-cell directories of the analyses, one file per layer: results/<step>/<model>/<checkpoint>/<dimension>/.
CELL_STEPS = ("probe", "mi", "steering_vectors", "steering")
CELLS = "{results}/{step}/{model}/{checkpoint}/{dimension}"
TABLE = "{results}/tables/{name}.parquet"

_LAYER_FILE = re.compile(r"^layer=(\d+)\.(json|parquet|safetensors)$")


def pattern(template: str, **fixed: str) -> str:
    """A template for Snakemake rules: the default results directory filled in, ``fixed`` wildcards (e.g.
    ``step="probe"``) too, the others left as ``{wildcards}``."""
    for key, value in {"results": RESULTS, **fixed}.items():
        template = template.replace("{" + key + "}", value)
    return template


def layer_file(layer: int, extension: str) -> str:
    """``layer=<L>.<extension>``: a per-layer file inside a cell or activation directory."""
    return f"layer={int(layer)}.{extension}"


def vector_key(layer: int) -> str:
    """The tensor name of a layer's steering vector inside its safetensors file."""
    return f"layer={int(layer)}"


def layer_of(path: str | Path) -> int:
    """``.../layer=12.json`` -> 12; ValueError for any other name."""
    match = _LAYER_FILE.match(Path(path).name)
    if match is None:
        raise ValueError(f"{path}: not a per-layer file (expected layer=<L>.json|parquet|safetensors)")
    return int(match.group(1))


def layers_in(directory: str | Path, extension: str) -> list[int]:
    """The layers that have a ``layer=<L>.<extension>`` file in ``directory``, ascending."""
    return sorted(layer_of(p) for p in Path(directory).glob(f"layer=*.{extension}"))


def data_table(dimension: str, results: str | Path = RESULTS) -> Path:
    return Path(DATA.format(results=results, dimension=dimension))


def model_record(model: str, checkpoint: str, results: str | Path = RESULTS) -> Path:
    return Path(MODEL_RECORD.format(results=results, model=model, checkpoint=checkpoint))


def local_copy_dir(model: str, checkpoint: str, results: str | Path = RESULTS) -> Path:
    return Path(LOCAL_COPY.format(results=results, model=model, checkpoint=checkpoint))


def activations_dir(model: str, checkpoint: str, dimension: str, results: str | Path = RESULTS) -> Path:
    return Path(ACTIVATIONS.format(results=results, model=model, checkpoint=checkpoint, dimension=dimension))


def cells_dir(step: str, model: str, checkpoint: str, dimension: str, results: str | Path = RESULTS) -> Path:
    if step not in CELL_STEPS:
        raise ValueError(f"unknown analysis step {step!r} (one of {CELL_STEPS})")
    return Path(CELLS.format(results=results, step=step, model=model, checkpoint=checkpoint, dimension=dimension))


def table(name: str, results: str | Path = RESULTS) -> Path:
    return Path(TABLE.format(results=results, name=name))
