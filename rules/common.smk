import sys
from pathlib import Path

from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir) / "workflow_scripts"))

from trusttrace import config as tt_config  # noqa: E402
from trusttrace import layout  # noqa: E402
from trusttrace.errors import TrustTraceError  # noqa: E402

# Schema first (one-line messages naming the key path, nested defaults filled), then Snakemake's own validation
# against the same schema (the Snakemake workflow catalog's standardized-usage check looks for it; it cannot fail
# once the first passed), then cross-key checks: a bad config fails here, before any job runs.
try:
    tt_config.validate_schema(config)
    validate(config, schema="../workflow_scripts/trusttrace/schemas/config.schema.yaml")
    tt_config.check_config(config)
except TrustTraceError as error:
    raise WorkflowError(str(error)) from None
# Params are compared by repr, key order included: sorted keys make reordering a config file harmless.
canonical_config = tt_config.sorted_mappings(config)
config.clear()
config.update(canonical_config)


NAME = "[A-Za-z0-9][A-Za-z0-9._-]*"
# Every results path of the analysis comes from trusttrace.layout (the library and the Python API use it too).
DATA = layout.pattern(layout.DATA)
MODEL_RECORD = layout.pattern(layout.MODEL_RECORD)
LOCAL_COPY = layout.pattern(layout.LOCAL_COPY)
ACTIVATIONS = layout.pattern(layout.ACTIVATIONS)


def cells_of(step):
    """results/<step>/{model}/{checkpoint}/{dimension}: one analysis step's cell directories."""
    return layout.pattern(layout.CELLS, step=step)


wildcard_constraints:
    model=NAME,
    checkpoint=NAME,
    dimension=NAME,
    demo="[a-z]+",
    n="[0-9]+",


MODELS = tt_config.analysed_models(config)
DIMENSIONS = list(config["dimensions"])


# Not settings of a cell: the checkpoint list (adding a checkpoint must leave old jobs' params as they were; a
# changed param reruns every cell of the model), the duplicate-weights gate's settings (rules/extract.smk) and
# what happens to the HF cache once a local copy is made (hub_cache: where files live, not what a cell computes).
NOT_CELL_SETTINGS = ("checkpoints", "duplicate_weights", "duplicate_check", "hub_cache")


def model_settings(model):
    """A model's settings that a cell's result depends on."""
    return {
        k: v for k, v in config["models"][model].items() if k not in NOT_CELL_SETTINGS
    }


def model_spec(wildcards):
    return model_settings(wildcards.model)


def steering_target_spec(wildcards):
    return model_settings(tt_config.steering_target(config, wildcards.model)[0])


# Only the settings that change a steering cell's result: the list of source checkpoints is not one of them.
STEERING_CELL_SETTINGS = {
    key: config["steering"][key]
    for key in (
        "layers",
        "alphas",
        "positions",
        "n_random",
        "n_bootstrap",
        "seed",
        "max_statements",
    )
}
# How statements are tokenised for steering: as extraction tokenised them, so a vector is applied in its context.
STEERING_ENCODING = {
    "special_tokens": config["extraction"].get("special_tokens", "auto"),
    "max_length": config["extraction"]["max_length"],
}


def cell_keys(model, checkpoint, dimension):
    """The keys every per-cell metrics file repeats; from the cell's own model, checkpoint and dimension only."""
    return {
        "model": model,
        "checkpoint": checkpoint,
        "dimension": dimension,
        **tt_config.checkpoint_position(config, model, checkpoint),
        # The seed of the data split; each analysis adds its own seed to the file.
        "split_seed": config["split"]["seed"],
    }


def cell_params(wildcards):
    return cell_keys(wildcards.model, wildcards.checkpoint, wildcards.dimension)


def steering_dimensions(wildcards):
    """Per dimension, in config order: what a steering job scores one source checkpoint's cells with. Adding a
    dimension changes these params (every steering job reruns, they are cheap); adding a checkpoint does not.
    """
    return {
        dimension: {
            "cell": cell_keys(wildcards.model, wildcards.checkpoint, dimension),
            "trustworthy_label": spec["trustworthy_label"],
            "prompt": tt_config.steering_prompt(config, dimension),
        }
        for dimension, spec in config["dimensions"].items()
    }


def mi_reference_activations(wildcards):
    """X of I(X;T) under mi.input_reference first_checkpoint: the first checkpoint's activations of this cell's
    model x dimension (from its own wildcards; the first checkpoint does not move when one is added).
    """
    if config["mi"]["input_reference"] != "first_checkpoint":
        return []
    first = tt_config.checkpoint_names(config, wildcards.model)[0]
    return str(layout.activations_dir(wildcards.model, first, wildcards.dimension))


def pretrain_checkpoint_dir(model, checkpoint):
    return f"results/pretrain/{model}/checkpoints/{checkpoint}"


def previous_pretrain_checkpoint(wildcards):
    previous = tt_config.previous_checkpoint(
        config, wildcards.model, wildcards.checkpoint
    )
    return (
        [] if previous is None else pretrain_checkpoint_dir(wildcards.model, previous)
    )


def checkpoint_files_of(model, checkpoint):
    """What loading a checkpoint needs on disk: the pre-trained directory (pretrain), nothing else (hf, local)."""
    if config["models"][model]["source"] == "pretrain":
        return [pretrain_checkpoint_dir(model, checkpoint)]
    return []


def checkpoint_files(wildcards):
    return checkpoint_files_of(wildcards.model, wildcards.checkpoint)


def local_copy_of(model, checkpoint):
    """The local copy a job loading this checkpoint reads (hf, local); nothing for pretrain (already local
    safetensors). ancient(): a copy re-made after temp() removed it never reruns the jobs that read the old one;
    changed weights still do, through the checkpoint's record."""
    if config["models"][model]["source"] == "pretrain":
        return []
    return ancient(str(layout.local_copy_dir(model, checkpoint)))


def local_copy_settings(wildcards):
    """The settings a checkpoint's local copy is made with (its dtype, and how its source may be read)."""
    spec = config["models"][wildcards.model]
    return {
        key: spec[key] for key in ("dtype", "trust_remote_code", "allow_pickle_weights")
    }


def local_copy(wildcards):
    return local_copy_of(wildcards.model, wildcards.checkpoint)


def steering_target_local_copy(wildcards):
    return local_copy_of(*tt_config.steering_target(config, wildcards.model))


def checkpoint_records_up_to(wildcards):
    """The records of this checkpoint and of every checkpoint before it in config order: what its gate compares.
    A checkpoint added later never changes an earlier checkpoint's gate."""
    names = tt_config.checkpoint_names(config, wildcards.model)
    position = names.index(wildcards.checkpoint)
    return [
        str(layout.model_record(wildcards.model, name))
        for name in names[: position + 1]
    ]


def checkpoint_gate_of(model, checkpoint):
    """The integrity gate a job of this checkpoint waits for. ancient(): a gate that is redone (another
    duplicate_weights, a checkpoint inserted before it) and passes again does not rerun finished jobs; changed
    weights still do, through the checkpoint's record."""
    return ancient(f"results/models/{model}/{checkpoint}.verified")


def checkpoint_gate(wildcards):
    return checkpoint_gate_of(wildcards.model, wildcards.checkpoint)


def steering_target_gate(wildcards):
    return checkpoint_gate_of(*tt_config.steering_target(config, wildcards.model))


# The gate reads a few small JSON records: on a cluster it runs where Snakemake runs, not as a submitted job.


def dimension_csv(wildcards):
    """The dimension's CSV; nothing for a url dimension not downloaded yet (its prepare_dimension job fetches it)."""
    path = tt_config.dimension_csv(config, wildcards.dimension)
    if "url" in config["dimensions"][wildcards.dimension] and not Path(path).is_file():
        return []
    return path


def dimension_source(wildcards):
    """Where prepare_dimension reads (and, with url, first fetches and verifies) the CSV."""
    spec = config["dimensions"][wildcards.dimension]
    return {
        "csv": tt_config.dimension_csv(config, wildcards.dimension),
        "url": spec.get("url"),
        "sha256": spec.get("sha256"),
    }


def steering_target_threads(wildcards):
    return config["models"][tt_config.steering_target(config, wildcards.model)[0]][
        "threads"
    ]


def steering_target_record(wildcards):
    target_model, target_checkpoint = tt_config.steering_target(config, wildcards.model)
    return str(layout.model_record(target_model, target_checkpoint))


def steering_target_files(wildcards):
    target_model, target_checkpoint = tt_config.steering_target(config, wildcards.model)
    return checkpoint_files_of(target_model, target_checkpoint)


def expand_cells(output, checkpoints_of=None):
    """A rule's per-cell output over every analysed model x checkpoint x dimension (``checkpoints_of(model)``:
    which checkpoints; default all of the model's)."""
    checkpoints_of = checkpoints_of or (
        lambda model: tt_config.checkpoint_names(config, model)
    )
    grid = [
        (model, checkpoint, dimension)
        for model in MODELS
        for checkpoint in checkpoints_of(model)
        for dimension in DIMENSIONS
    ]
    models, checkpoints, dimensions = zip(*grid) if grid else ((), (), ())
    return expand(
        output, zip, model=models, checkpoint=checkpoints, dimension=dimensions
    )


def steering_directories():
    if not config["steering"]["enabled"]:
        return []
    return expand_cells(
        cells_of("steering"),
        lambda model: tt_config.steering_source_checkpoints(config, model),
    )


def all_targets():
    """Every cell of the grid and each model's integrity summary (the aggregates come from aggregate_targets)."""
    return (
        expand_cells(rules.probe.output[0])
        + expand_cells(rules.mutual_information.output[0])
        + steering_directories()
        + expand(rules.check_checkpoint_integrity.output[0], model=MODELS)
    )


# ---------------------------------------------------------------------------------------------------------------
# Aggregation (rules/tables.smk, rules/figures.smk): tables, figures and summary built from every cell.

TABLES = "results/tables"
FIGURES = "results/figures/{model}"
CELL_FIGURES = [
    "probe_accuracy_heatmap",
    "probe_accuracy_curves",
    "information_curves",
    "information_plane",
]


def pretrain_models():
    return [
        model for model in MODELS if config["models"][model]["source"] == "pretrain"
    ]


def pretrain_loss_cells():
    """(model, checkpoint) of every pre-training loss file, in config order."""
    return [
        (model, checkpoint)
        for model in pretrain_models()
        for checkpoint in tt_config.checkpoint_names(config, model)
    ]


def report_table(path, name):
    """A table (or the summary) marked for ``snakemake --report``: Overview > Tables, caption report/<name>.rst."""
    return report(
        path,
        caption=f"../report/{name}.rst",
        category="Overview",
        subcategory="Tables",
        labels={"table": name},
    )


def report_figure(path, name, label, category="{dimension}"):
    """A figure marked for ``snakemake --report`` under its dimension (or Overview), caption report/<name>.rst."""
    return report(
        path,
        caption=f"../report/{name}.rst",
        category=category,
        subcategory="{model}",
        labels={"model": "{model}", "figure": label},
    )


def figure_files(name, model, dimension=None):
    stem = f"results/figures/{model}/" + (f"{dimension}/" if dimension else "") + name
    return [f"{stem}.png", f"{stem}.svg"]


def aggregate_targets():
    """Tables, figures and summary built from every cell (the report itself: snakemake --report)."""
    targets = [
        f"{TABLES}/metrics.parquet",
        f"{TABLES}/metrics.csv",
        f"{TABLES}/degenerate_cells.parquet",
        f"{TABLES}/phases.parquet",
        f"{TABLES}/phases.csv",
        f"{TABLES}/findings.parquet",
        f"{TABLES}/findings.csv",
        "results/summary.md",
    ]
    if pretrain_models():
        targets.append(f"{TABLES}/pretrain_loss.parquet")
    for model in MODELS:
        targets += figure_files("overview", model)
        if model in pretrain_models():
            targets += figure_files("pretrain_loss", model)
        for dimension in DIMENSIONS:
            names = CELL_FIGURES + (["steering"] if steering_directories() else [])
            for name in names:
                targets += figure_files(name, model, dimension)
    return targets
