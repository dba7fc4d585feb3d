"""Configuration: schema validation with defaults, cross-key checks, and the grid the workflow expands over.

Everything here runs when Snakemake loads the Snakefile, so every mistake a config can hold fails before any job
runs, with the key path in the message (``models.tiny.checkpoints[2].step: ...``). No torch imports.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from trusttrace.errors import TrustTraceError

# Package data, so a non-editable install finds it too (pyproject.toml: tool.setuptools.package-data).
SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "config.schema.yaml"


def _path_string(path: Iterator[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<config root>"


def _with_defaults(validator_class):
    """A validator class that also fills each object's missing properties from their schema defaults."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def fill_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, subschema in properties.items():
                if "default" in subschema and key not in instance:
                    instance[key] = json.loads(json.dumps(subschema["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": fill_defaults})


def load_schema(schema_path: Path = SCHEMA_PATH) -> dict:
    with open(schema_path) as handle:
        return yaml.safe_load(handle)


def drop_null_overrides(config: dict) -> dict:
    """``models.<n>: null`` / ``dimensions.<n>: null`` removes that entry; ``<key>: null`` inside an entry removes
    the key. Snakemake merges config files key by key, so this is how an overlay takes something out."""
    for section in ("models", "dimensions"):
        entries = config.get(section)
        if not isinstance(entries, dict):
            continue
        for name in [n for n, spec in entries.items() if spec is None]:
            del entries[name]
        for spec in entries.values():
            if isinstance(spec, dict):
                for key in [k for k, v in spec.items() if v is None]:
                    del spec[key]
    return config


def validate_schema(config: dict, schema_path: Path = SCHEMA_PATH) -> dict:
    """Check ``config`` against the JSON schema, fill defaults in place, and return it.

    Raises TrustTraceError naming the path of the first bad key, e.g. ``models.tiny.source: 'hub' is not one of
    ['pretrain', 'hf', 'local']``. ``oneOf`` failures are reported through their most relevant branch.
    """
    drop_null_overrides(config)
    dimensions = config.get("dimensions")
    for name, spec in dimensions.items() if isinstance(dimensions, dict) else ():
        if isinstance(spec, dict) and "csv" in spec and "demo" in spec:
            raise TrustTraceError(
                f"config error at dimensions.{name}: both csv and demo are set (Snakemake merges config files key "
                "by key: set demo: null in an overlay, as configs/paper-datasets.yaml does, or run with "
                "--replace-workflow-config)"
            )
    schema = load_schema(schema_path)
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(list(e.absolute_path)), str(e.message)))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        where = _path_string(best.absolute_path)
        message = best.message
        if best.validator == "additionalProperties":
            message = f"unknown key: {message}"
        raise TrustTraceError(f"config error at {where}: {message}")
    return config


def sorted_mappings(value: Any) -> Any:
    """The same structure with every mapping's keys sorted (list order kept).

    Snakemake compares a job's params by their repr, key order included: with sorted keys, reordering the keys
    of a config file (or writing it with another YAML dumper) never reruns a job.
    """
    if isinstance(value, dict):
        return {key: sorted_mappings(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [sorted_mappings(item) for item in value]
    return value


def load_config_file(path: str | Path) -> dict:
    """Read and validate a YAML config file (used by tests and tools; the Snakefile gets its config from Snakemake)."""
    with open(path) as handle:
        config = yaml.safe_load(handle) or {}
    validate_schema(config)
    check_config(config)
    return config


# ---------------------------------------------------------------------------------------------------------------
# Grid accessors: small pure functions over a validated config, shared by the Snakefile and the scripts.


def checkpoint_names(config: dict, model: str) -> list[str]:
    return [c["name"] for c in config["models"][model]["checkpoints"]]


def checkpoint_entry(config: dict, model: str, checkpoint: str) -> dict:
    for entry in config["models"][model]["checkpoints"]:
        if entry["name"] == checkpoint:
            return entry
    raise TrustTraceError(f"config error at models.{model}.checkpoints: no checkpoint named {checkpoint!r}")


def checkpoint_position(config: dict, model: str, checkpoint: str) -> dict[str, Any]:
    """The x-axis of a checkpoint: ``{"step": int|None, "tokens": float|None}`` (pretrain: tokens from the batch)."""
    entry = checkpoint_entry(config, model, checkpoint)
    step, tokens = entry.get("step"), entry.get("tokens")
    spec = config["models"][model]
    if tokens is None and step is not None and spec["source"] == "pretrain":
        tokens = step * spec["pretrain"]["batch_size"] * spec["pretrain"]["seq_len"]
    return {"step": step, "tokens": tokens}


def previous_checkpoint(config: dict, model: str, checkpoint: str) -> str | None:
    names = checkpoint_names(config, model)
    index = names.index(checkpoint)
    return names[index - 1] if index > 0 else None


def analysed_models(config: dict) -> list[str]:
    return [name for name, spec in config["models"].items() if spec.get("analyse", True)]


def known_num_layers(config: dict, model: str) -> int | None:
    """Number of transformer blocks if it is known without loading the model (pretrain, or a local config.json)."""
    spec = config["models"][model]
    if spec["source"] == "pretrain":
        return spec["pretrain"]["num_layers"]
    if spec["source"] == "local":
        first = local_checkpoint_dir(config, model, spec["checkpoints"][0]["name"])
        config_json = Path(first) / "config.json"
        if config_json.is_file():
            return layer_count(config_json)
    return None


def layer_count(config_json: str | Path) -> int | None:
    """Number of transformer blocks a model's config.json declares (multimodal configs: their text part)."""
    model_config = json.loads(Path(config_json).read_text())
    text_config = model_config.get("text_config", model_config)
    for key in ("num_hidden_layers", "n_layer", "num_layers"):
        if key in text_config:
            return int(text_config[key])
    return None


def local_checkpoint_dir(config: dict, model: str, checkpoint: str) -> str:
    spec = config["models"][model]
    entry = checkpoint_entry(config, model, checkpoint)
    if "path" in entry:
        return entry["path"]
    return str(Path(spec["path"]) / checkpoint)


def selected_layers(config: dict, num_layers: int) -> list[int]:
    """Hidden-state indices to analyse: 0 is the embedding output, l the output of block l (1..num_layers)."""
    if config["layers"] == "all":
        return list(range(num_layers + 1))
    return sorted(config["layers"])


def steering_target(config: dict, model: str) -> tuple[str, str]:
    """(target model, target checkpoint) that a source model's steering vectors are added to."""
    target = config["steering"]["target"]
    if target is not None:
        return target["model"], target["checkpoint"]
    return model, checkpoint_names(config, model)[-1]


def steering_source_checkpoints(config: dict, model: str) -> list[str]:
    chosen = config["steering"]["source_checkpoints"]
    return checkpoint_names(config, model) if chosen == "all" else list(chosen)


def steering_layers(config: dict, num_layers: int) -> list[int]:
    chosen = config["steering"]["layers"]
    return [max(1, num_layers // 2)] if chosen == "middle" else sorted(chosen)


def steering_prompt(config: dict, dimension: str) -> dict:
    """{prompt, answers: {trustworthy, untrustworthy}, default_of} the prompted steering protocol uses for a
    dimension: its own ``prompt`` / ``answers`` keys, else the paper's prompt for its kind, else a generic one."""
    from trusttrace.steering import dimension_prompt

    return dimension_prompt(dimension, config["dimensions"][dimension])


def dimension_csv(config: dict, dimension: str) -> str:
    """Where a dimension's CSV lives: a generated demo file under results/, or the user's CSV."""
    spec = config["dimensions"][dimension]
    if "demo" in spec:
        return f"results/demo/{spec['demo']}-n{spec['demo_size']}.csv"
    path = Path(spec["csv"]).expanduser()
    if not path.is_absolute() and config.get("data_dir"):
        path = Path(config["data_dir"]).expanduser() / path
    return str(path)


# ---------------------------------------------------------------------------------------------------------------
# Cross-key checks the schema cannot express.


def check_config(config: dict, check_files: bool = True) -> None:
    """Raise TrustTraceError on the first cross-key inconsistency (key path in the message)."""
    if not analysed_models(config):
        raise TrustTraceError("config error at models: every model has analyse: false; nothing to analyse")
    for model, spec in config["models"].items():
        _check_model(config, model, spec, check_files)
    _check_split(config["split"])
    for dimension, spec in config["dimensions"].items():
        _check_download(dimension, spec)
    if check_files:
        _check_data_dir(config)
        from trusttrace.data import check_dimension  # pandas only when files are checked

        for dimension, spec in config["dimensions"].items():
            if "csv" in spec:
                if "url" in spec and not Path(dimension_csv(config, dimension)).is_file():
                    continue  # fetched and checked by its prepare_dimension job
                # The whole preparation (read, groups, conflicts, subsample, split): milliseconds per file.
                check_dimension(dimension_csv(config, dimension), spec, config["split"], f"dimensions.{dimension}")
            else:
                _check_demo_size(dimension, spec)
    _check_steering(config)


def _check_download(dimension: str, spec: dict) -> None:
    if ("url" in spec) != ("sha256" in spec):
        raise TrustTraceError(
            f"config error at dimensions.{dimension}: url and sha256 go together (a download is only kept when "
            "its checksum matches)"
        )
    if "url" in spec and "csv" not in spec:
        raise TrustTraceError(
            f"config error at dimensions.{dimension}: url needs csv, the path to keep the download at"
        )


def _check_split(split: dict) -> None:
    if split["test_fraction"] + split["validation_fraction"] >= 1:
        raise TrustTraceError(
            f"config error at split: test_fraction {split['test_fraction']} + validation_fraction "
            f"{split['validation_fraction']} leaves no rows for training (the sum must be < 1)"
        )


def _check_data_dir(config: dict) -> None:
    data_dir = config.get("data_dir")
    if not data_dir:
        return
    path = Path(data_dir).expanduser()
    if path.exists() and not path.is_dir():
        raise TrustTraceError(f"config error at data_dir: {path} is a file, not a directory (the CSVs' directory)")
    relative = [
        name
        for name, spec in config["dimensions"].items()
        if "csv" in spec and "url" not in spec and not Path(spec["csv"]).expanduser().is_absolute()
    ]
    if relative and not path.exists():
        raise TrustTraceError(
            f"config error at data_dir: {path} does not exist (dimensions {relative} are read from it; relative "
            "data_dir is taken from the working directory)"
        )


def _check_demo_size(dimension: str, spec: dict) -> None:
    """A demo dimension's demo_size must be even (half per label) and, for a template one, within its pools
    (word_order's limit depends on the corpus and is checked when it is made)."""
    from trusttrace.demo_data import WORD_ORDER, max_demo_size

    where = f"config error at dimensions.{dimension}.demo_size"
    size = spec["demo_size"]
    if size % 2:
        raise TrustTraceError(f"{where}: {size} is odd; each label gets demo_size/2 rows")
    if spec["demo"] != WORD_ORDER and size > max_demo_size(spec["demo"]):
        raise TrustTraceError(
            f"{where}: demo {spec['demo']!r} can produce at most {max_demo_size(spec['demo'])} "
            f"statements without repeats (got {size})"
        )


def _check_model(config: dict, model: str, spec: dict, check_files: bool) -> None:
    where = f"models.{model}"
    names = [c["name"] for c in spec["checkpoints"]]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise TrustTraceError(f"config error at {where}.checkpoints: duplicate checkpoint names {duplicated}")
    source = spec["source"]
    for key, owner in {"repo": "hf", "path": "local"}.items():
        if key in spec and source != owner:
            raise TrustTraceError(
                f"config error at {where}.{key}: only used with source: {owner} (this model is {source})"
            )
    if source == "pretrain":
        steps = []
        for index, entry in enumerate(spec["checkpoints"]):
            if "step" not in entry:
                raise TrustTraceError(f"config error at {where}.checkpoints[{index}]: source: pretrain needs a step")
            steps.append(entry["step"])
        if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
            raise TrustTraceError(f"config error at {where}.checkpoints: steps must increase strictly, got {steps}")
        pretrain = spec["pretrain"]
        if pretrain["hidden_size"] % pretrain["num_heads"]:
            raise TrustTraceError(f"config error at {where}.pretrain: hidden_size must be a multiple of num_heads")
    if spec.get("hub_cache", "keep") == "evict" and source != "hf":
        # Only a hub revision has a cached copy to evict; deleting a local or pre-trained directory is never meant.
        raise TrustTraceError(
            f"config error at {where}.hub_cache: evict deletes a hub revision from the HF cache and only applies "
            f"to source: hf (this model is {source}); remove it or set hub_cache: keep"
        )
    if source == "hf" and "repo" not in spec:
        raise TrustTraceError(f"config error at {where}: source: hf needs repo (e.g. EleutherAI/pythia-160m)")
    if source == "local":
        for index, entry in enumerate(spec["checkpoints"]):
            if "path" not in entry and "path" not in spec:
                raise TrustTraceError(f"config error at {where}.checkpoints[{index}]: source: local needs path")
            if check_files:
                directory = Path(local_checkpoint_dir(config, model, entry["name"]))
                if not (directory / "config.json").is_file():
                    raise TrustTraceError(
                        f"config error at {where}.checkpoints[{index}]: checkpoint {entry['name']!r} not found: "
                        f"{directory}/config.json does not exist"
                    )
    if source != "local" or check_files:
        num_layers = known_num_layers(config, model)
        if num_layers is not None:
            check_layer_ranges(config, where, num_layers)


def check_layer_ranges(config: dict, where: str, num_layers: int) -> None:
    """``layers``, ``mi.input_layer`` and ``steering.layers`` of ``config`` (only those keys are read) must exist in
    a model of ``num_layers`` blocks; ``where`` names the model (and checkpoint) in the message."""
    if config["layers"] != "all":
        bad = [layer for layer in config["layers"] if layer > num_layers]
        if bad:
            raise TrustTraceError(
                f"config error at layers: {bad} out of range for {where} (hidden states 0..{num_layers})"
            )
    if config["mi"]["input_layer"] > num_layers:
        raise TrustTraceError(
            f"config error at mi.input_layer: {config['mi']['input_layer']} out of range for {where} "
            f"(hidden states 0..{num_layers})"
        )
    if config["steering"]["layers"] != "middle":
        bad = [layer for layer in config["steering"]["layers"] if layer > num_layers]
        if bad:
            raise TrustTraceError(
                f"config error at steering.layers: {bad} out of range for {where} (blocks 1..{num_layers})"
            )


def _check_steering(config: dict) -> None:
    steering = config["steering"]
    if not steering["enabled"]:
        return
    target = steering["target"]
    if target is not None:
        if target["model"] not in config["models"]:
            raise TrustTraceError(
                f"config error at steering.target.model: unknown model {target['model']!r} "
                f"(models: {sorted(config['models'])})"
            )
        if target["checkpoint"] not in checkpoint_names(config, target["model"]):
            raise TrustTraceError(
                f"config error at steering.target.checkpoint: {target['model']} has no checkpoint "
                f"{target['checkpoint']!r}"
            )
    if not any(alpha > 0 for alpha in steering["alphas"]):
        raise TrustTraceError(
            f"config error at steering.alphas: {steering['alphas']} has no alpha > 0; improvements are measured "
            "toward each dimension's trustworthy_label, i.e. at alpha > 0"
        )
    for dimension in config["dimensions"]:
        steering_prompt(config, dimension)
    if steering["source_checkpoints"] != "all":
        for model in analysed_models(config):
            missing = sorted(set(steering["source_checkpoints"]) - set(checkpoint_names(config, model)))
            if missing:
                raise TrustTraceError(
                    f"config error at steering.source_checkpoints: {missing} are not checkpoints of {model}"
                )
