"""Config validation: every bad key or cross-key mistake fails at load with the key path in the message."""

import copy

import pytest
import yaml
from helpers import REPO
from trusttrace.config import (
    check_config,
    checkpoint_position,
    dimension_csv,
    load_config_file,
    previous_checkpoint,
    selected_layers,
    steering_target,
    validate_schema,
)
from trusttrace.errors import TrustTraceError


@pytest.fixture
def default_config():
    return yaml.safe_load((REPO / "config.yaml").read_text())


def validated(config):
    validate_schema(config)
    check_config(config)
    return config


def test_default_config_validates_and_fills_defaults(default_config):
    config = validated(default_config)
    tiny = config["models"]["tiny"]
    assert tiny["trust_remote_code"] is False and tiny["allow_pickle_weights"] is False
    assert config["split"] == {"test_fraction": 0.2, "validation_fraction": 0.2, "seed": 0}
    assert config["dimensions"]["privacy"]["text_column"] == "statement"
    assert (config["dimensions"]["privacy"]["group_by"], config["dimensions"]["privacy"]["on_conflict"]) == (
        "exact",
        "error",
    )
    assert config["extraction"]["special_tokens"] == "auto"
    assert config["extraction"]["max_truncated_fraction"] == 0.05
    assert dimension_csv(config, "privacy") == "results/demo/privacy-n400.csv"
    assert checkpoint_position(config, "tiny", "step4") == {"step": 4, "tokens": 4 * 16 * 128}
    assert previous_checkpoint(config, "tiny", "step0") is None
    assert previous_checkpoint(config, "tiny", "step16") == "step4"
    assert selected_layers(config, 4) == [0, 1, 2, 3, 4]
    assert steering_target(config, "tiny") == ("tiny", "step1000")


def test_shipped_configs_validate():
    for path in [REPO / "config.yaml", REPO / "tests" / "configs" / "tiny.yaml"]:
        load_config_file(path)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c["models"]["tiny"].update(sourc="hf"), r"models\.tiny: unknown key.*'sourc'"),
        (lambda c: c.update(probes={}), r"<config root>: unknown key.*'probes'"),
        (
            lambda c: c["models"]["tiny"]["checkpoints"][2].update(step="x"),
            r"models\.tiny\.checkpoints\[2\]\.step: 'x' is not of type",
        ),
        (lambda c: c["models"]["tiny"].update(source="hub"), r"models\.tiny\.source: 'hub' is not one of"),
        (lambda c: c["split"].update(test_fraction=1.5), r"split\.test_fraction"),
        (lambda c: c["split"].update(validation_fraction=-0.1), r"split\.validation_fraction"),
        (lambda c: c["split"].update(validation_fraction=0.8), r"split: test_fraction 0\.2 \+ valid.* leaves no rows"),
        (lambda c: c["dimensions"]["privacy"].update(group_by="first"), r"privacy\.group_by: 'first' does not match"),
        (lambda c: c["dimensions"]["privacy"].update(group_by="prefix:"), r"privacy\.group_by: 'prefix:' does not"),
        (lambda c: c["dimensions"]["privacy"].update(on_conflict="skip"), r"privacy\.on_conflict: 'skip' is not"),
        (lambda c: c["extraction"].update(special_tokens="bos"), r"extraction\.special_tokens: 'bos' is not one of"),
        (lambda c: c["extraction"].update(max_truncated_fraction=2), r"extraction\.max_truncated_fraction"),
        (
            lambda c: c["dimensions"]["privacy"].pop("trustworthy_label"),
            r"dimensions\.privacy: 'trustworthy_label' is a required",
        ),
        (lambda c: c["models"].update({"../evil": c["models"]["tiny"]}), r"models: '\.\./evil' does not match"),
        (
            lambda c: c["models"]["tiny"]["checkpoints"][1].update(name="a/b"),
            r"checkpoints\[1\]\.name: 'a/b' does not match",
        ),
        (lambda c: c.update(layers=[0, 9]), r"layers: \[9\] out of range for models\.tiny \(hidden states 0\.\.4\)"),
        (lambda c: c["mi"].update(input_layer=7), r"mi\.input_layer: 7 out of range"),
        (lambda c: c["steering"].update(layers=[5]), r"steering\.layers: \[5\] out of range"),
        (
            lambda c: c["steering"].update(target={"model": "nope", "checkpoint": "x"}),
            r"steering\.target\.model: unknown model 'nope'",
        ),
        (
            lambda c: c["steering"].update(target={"model": "tiny", "checkpoint": "step7"}),
            r"steering\.target\.checkpoint: tiny has no checkpoint 'step7'",
        ),
        (
            lambda c: c["steering"].update(source_checkpoints=["step3"]),
            r"steering\.source_checkpoints: \['step3'\] are not checkpoints of tiny",
        ),
        (
            lambda c: c["models"]["tiny"]["checkpoints"].append({"name": "step4", "step": 2000}),
            r"duplicate checkpoint names \['step4'\]",
        ),
        (
            lambda c: c["models"]["tiny"]["checkpoints"].append({"name": "late", "step": 8}),
            r"steps must increase strictly",
        ),
        (
            lambda c: c["models"]["tiny"]["checkpoints"].append({"name": "nostep"}),
            r"checkpoints\[8\]: source: pretrain needs a step",
        ),
        (
            lambda c: c["models"].update(pythia={"source": "hf", "checkpoints": [{"name": "step1"}]}),
            r"models\.pythia: source: hf needs repo",
        ),
        (lambda c: c["models"]["tiny"].update(analyse=False), r"every model has analyse: false"),
        (
            lambda c: c["dimensions"].update(x={"csv": "/nonexistent/x.csv", "trustworthy_label": 1}),
            r"dimensions\.x: /nonexistent/x\.csv: dimension CSV not found",
        ),
    ],
)
def test_bad_config_fails_with_key_path(default_config, mutate, message):
    config = copy.deepcopy(default_config)
    mutate(config)
    with pytest.raises(TrustTraceError, match=message):
        validated(config)


def test_local_checkpoint_must_exist(default_config, tmp_path, tiny_checkpoint_dir):
    config = copy.deepcopy(default_config)
    config["models"]["mine"] = {
        "source": "local",
        "path": str(tiny_checkpoint_dir.parent),
        "checkpoints": [{"name": tiny_checkpoint_dir.name}, {"name": "missing"}],
    }
    config["layers"] = [0, 1]
    config["mi"] = {"input_layer": 1}
    with pytest.raises(TrustTraceError, match=r"models\.mine\.checkpoints\[1\]: checkpoint 'missing' not found"):
        validated(config)
    config["models"]["mine"]["checkpoints"].pop()
    config["layers"] = [0, 3]
    with pytest.raises(TrustTraceError, match=r"layers: \[3\] out of range for models\.mine \(hidden states 0\.\.2\)"):
        validated(config)


def test_sorted_mappings_make_key_order_irrelevant():
    from trusttrace.config import sorted_mappings

    a = {"b": {"y": 1, "x": [{"q": 1, "p": 2}]}, "a": 0}
    b = {"a": 0, "b": {"x": [{"p": 2, "q": 1}], "y": 1}}
    assert repr(sorted_mappings(a)) == repr(sorted_mappings(b))
    assert sorted_mappings({"l": [3, 1, 2]})["l"] == [3, 1, 2]  # lists (checkpoint order) are kept


def csv_dimension(tmp_path, text, **spec):
    (tmp_path / "d.csv").write_text(text)
    return {"csv": "d.csv", "trustworthy_label": 1, **spec}


def test_data_dir_must_be_a_directory(default_config, tmp_path):
    config = copy.deepcopy(default_config)
    text = "statement,label\n" + "".join(f"s{i}.,{i % 2}\n" for i in range(40))
    config["dimensions"]["mine"] = csv_dimension(tmp_path, text)
    config["data_dir"] = str(tmp_path / "d.csv")
    with pytest.raises(TrustTraceError, match=r"^config error at data_dir: .*d\.csv is a file, not a directory"):
        validated(config)
    config["data_dir"] = str(tmp_path / "nope")
    with pytest.raises(
        TrustTraceError, match=r"^config error at data_dir: .*nope does not exist \(dimensions \['mine'"
    ):
        validated(config)
    config["data_dir"] = str(tmp_path)
    validated(config)


def test_dimension_data_problems_fail_at_load(default_config, tmp_path):
    """The whole preparation runs when the config is loaded: conflicts, group columns and small splits fail there."""
    rows = [f"s{i}.,{i % 2}" for i in range(40)]
    rows[5] = "s2.,1"  # s2 (label 0, data row 3) again with label 1 (data row 6)
    text = "statement,label\n" + "\n".join(rows) + "\n"
    config = copy.deepcopy(default_config)
    config["data_dir"] = str(tmp_path)
    config["dimensions"]["mine"] = csv_dimension(tmp_path, text)
    conflict = r"^config error at dimensions\.mine: .*1 statements occur with both labels \(data rows 3 and 6\)"
    with pytest.raises(TrustTraceError, match=conflict):
        validated(copy.deepcopy(config))
    config["dimensions"]["mine"]["on_conflict"] = "drop"
    validated(copy.deepcopy(config))
    config["dimensions"]["mine"]["group_by"] = "column:pair"
    with pytest.raises(TrustTraceError, match=r"^config error at dimensions\.mine: .*no column 'pair' \(the group_by"):
        validated(copy.deepcopy(config))
    config["dimensions"]["mine"]["group_by"] = "exact"
    config["split"]["test_fraction"] = 0.02
    with pytest.raises(TrustTraceError, match=r"^config error at dimensions\.mine: .*the test split gets [01] rows"):
        validated(copy.deepcopy(config))
