"""Loading untrusted checkpoints safely: safetensors only unless a model allows pickles, no remote code unless a
model asks for it, no pickle-capable loader anywhere in the workflow code, and wildcard values that can never
leave their directory."""

from __future__ import annotations

import ast
import copy
import re
import shutil
from pathlib import Path

import pytest
import yaml
from helpers import REPO
from trusttrace.errors import TrustTraceError

SCRIPTS = REPO / "workflow_scripts"
PYTHON_FILES = sorted(SCRIPTS.rglob("*.py"))
SNAKE_FILES = [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]


@pytest.fixture(scope="module")
def pickle_only_dir(tmp_path_factory, tiny_checkpoint_dir):
    """The tiny checkpoint re-saved as a legacy pickle checkpoint: config, tokenizer and pytorch_model.bin only.

    (transformers 5 ignores ``save_pretrained(safe_serialization=False)`` and writes safetensors anyway, so the
    state dict is written with ``torch.save``, which is what older ``save_pretrained`` did.)
    """
    import torch
    from transformers import AutoModelForCausalLM

    directory = tmp_path_factory.mktemp("pickle_only")
    model = AutoModelForCausalLM.from_pretrained(str(tiny_checkpoint_dir), use_safetensors=True)
    model.save_pretrained(str(directory), safe_serialization=False)
    for weights in directory.glob("*.safetensors"):
        weights.unlink()
    if not (directory / "pytorch_model.bin").is_file():
        torch.save(model.state_dict(), directory / "pytorch_model.bin")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_checkpoint_dir / name, directory / name)
    assert sorted(p.suffix for p in directory.iterdir() if p.suffix in (".bin", ".safetensors")) == [".bin"]
    return directory


def test_pickle_only_checkpoint_is_refused_unless_allowed(pickle_only_dir, tiny_checkpoint_dir):
    import torch
    from trusttrace.models import load_model_and_tokenizer, resolve_checkpoint_files

    with pytest.raises(TrustTraceError, match=r"cannot load .*no safetensors weights \(allow_pickle_weights is off\)"):
        load_model_and_tokenizer(str(pickle_only_dir), model_name="legacy")
    with pytest.raises(TrustTraceError, match=r"model 'legacy': .* only pickle \(\.bin\) weights: set allow_pickle"):
        resolve_checkpoint_files(str(pickle_only_dir), None, model_name="legacy", allow_pickle_weights=False)

    assert resolve_checkpoint_files(str(pickle_only_dir), None, model_name="legacy", allow_pickle_weights=True) == (
        pickle_only_dir,
        None,
    )
    model, _ = load_model_and_tokenizer(str(pickle_only_dir), model_name="legacy", allow_pickle_weights=True)
    reference, _ = load_model_and_tokenizer(str(tiny_checkpoint_dir))
    for (name, loaded), expected in zip(model.state_dict().items(), reference.state_dict().values(), strict=False):
        assert torch.equal(loaded, expected), name


def test_allowed_pickles_still_load_with_weights_only(pickle_only_dir, monkeypatch):
    """Even with allow_pickle_weights, transformers unpickles .bin files with torch.load(weights_only=True)."""
    import torch
    from trusttrace.models import load_model_and_tokenizer

    calls = []
    original = torch.load
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: calls.append(kwargs) or original(*args, **kwargs))
    load_model_and_tokenizer(str(pickle_only_dir), model_name="legacy", allow_pickle_weights=True)
    assert calls and all(kwargs.get("weights_only") is True for kwargs in calls), calls


def test_checkpoint_without_weights_is_refused(tmp_path, tiny_checkpoint_dir):
    from trusttrace.models import resolve_checkpoint_files

    shutil.copy(tiny_checkpoint_dir / "config.json", tmp_path / "config.json")
    shutil.copy(tiny_checkpoint_dir / "optimizer.safetensors", tmp_path / "optimizer.safetensors")
    with pytest.raises(TrustTraceError, match="has no weight files"):
        resolve_checkpoint_files(str(tmp_path), None, model_name="empty", allow_pickle_weights=True)


def test_truncated_safetensors_is_one_clear_error(tmp_path, tiny_checkpoint_dir):
    from trusttrace.models import load_model_and_tokenizer

    directory = tmp_path / "cut"
    shutil.copytree(tiny_checkpoint_dir, directory)
    weights = directory / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(TrustTraceError, match=r"cannot load .*truncated or corrupt: rebuild or re-download"):
        load_model_and_tokenizer(str(directory), model_name="cut")


def test_trust_remote_code_stays_off_unless_configured(tiny_checkpoint_dir, monkeypatch):
    """The config's defaults (schema-filled) reach from_pretrained as trust_remote_code=False, safetensors only;
    turning it on for a model is what turns it on."""
    import transformers
    from trusttrace.config import validate_schema
    from trusttrace.models import load_model_and_tokenizer

    calls = []
    for cls in (transformers.AutoModelForCausalLM, transformers.AutoTokenizer):
        original = cls.from_pretrained.__func__

        def recording(klass, *args, _original=original, **kwargs):
            calls.append((klass.__name__, kwargs))
            return _original(klass, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(recording))

    def load(model_settings):
        config = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
        config["models"]["mine"] = {
            "source": "local",
            "path": str(tiny_checkpoint_dir.parent),
            "checkpoints": [{"name": tiny_checkpoint_dir.name}],
            **model_settings,
        }
        spec = validate_schema(copy.deepcopy(config))["models"]["mine"]
        calls.clear()
        load_model_and_tokenizer(
            str(tiny_checkpoint_dir),
            model_name="mine",
            trust_remote_code=spec["trust_remote_code"],
            allow_pickle_weights=spec["allow_pickle_weights"],
        )
        return {name: kwargs for name, kwargs in calls}

    default = load({})
    assert default["AutoTokenizer"]["trust_remote_code"] is False
    assert default["AutoModelForCausalLM"]["trust_remote_code"] is False
    assert default["AutoModelForCausalLM"]["use_safetensors"] is True
    configured = load({"trust_remote_code": True})
    assert configured["AutoTokenizer"]["trust_remote_code"] is True
    assert configured["AutoModelForCausalLM"]["trust_remote_code"] is True


def test_rule_scripts_pass_the_configured_loading_flags():
    """Every script that loads a model passes the model's own trust_remote_code / allow_pickle_weights; nothing
    in the workflow code turns trust_remote_code on by itself or loads weights from anything but safetensors."""
    for path in PYTHON_FILES:
        for call in (n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Call)):
            keywords = {k.arg: k.value for k in call.keywords}
            name = ast.unparse(call.func)
            where = f"{path.relative_to(REPO)}:{call.lineno}"
            if isinstance(keywords.get("trust_remote_code"), ast.Constant):
                assert keywords["trust_remote_code"].value is False, where
            if name == "load_model_and_tokenizer" and path.parent == SCRIPTS:
                for flag in ("trust_remote_code", "allow_pickle_weights"):
                    assert re.fullmatch(rf"\w+\[['\"]{flag}['\"]\]", ast.unparse(keywords[flag])), where
            if name.endswith("ForCausalLM.from_pretrained") and path.name != "models.py":
                assert ast.unparse(keywords.get("use_safetensors", ast.Constant(None))) == "True", where


def loader_uses(attribute: str, modules: set[str]) -> list[tuple[Path, ast.AST, ast.Call | None]]:
    """Every ``<module>.<attribute>`` in the workflow's Python code, with the call it is the function of (None
    when it is used any other way, e.g. passed around as a value)."""
    found = []
    for path in PYTHON_FILES:
        tree = ast.parse(path.read_text())
        calls = {id(n.func): n for n in ast.walk(tree) if isinstance(n, ast.Call)}
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == attribute
                and isinstance(node.value, ast.Name)
                and node.value.id in modules
            ):
                found.append((path, node, calls.get(id(node))))
            if isinstance(node, ast.ImportFrom) and node.module in modules:
                assert attribute not in {a.name for a in node.names}, f"{path}: from {node.module} import {attribute}"
    return found


def keyword_is(call: ast.Call | None, name: str, value: bool) -> bool:
    return call is not None and any(
        k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is value for k in call.keywords
    )


def test_torch_load_only_with_weights_only():
    uses = loader_uses("load", {"torch"})
    bad = [f"{p.relative_to(REPO)}:{n.lineno}" for p, n, call in uses if not keyword_is(call, "weights_only", True)]
    assert not bad, f"torch.load without weights_only=True: {bad}"
    text_uses = sum(len(re.findall(r"\btorch\.load\b", p.read_text())) for p in PYTHON_FILES + SNAKE_FILES)
    assert text_uses == len(uses)  # none hidden in a .smk file or a string the AST check cannot see


def test_numpy_load_only_without_pickles():
    uses = loader_uses("load", {"np", "numpy"})
    assert uses, "expected the pre-training token stream to be loaded with np.load"
    bad = [f"{p.relative_to(REPO)}:{n.lineno}" for p, n, call in uses if not keyword_is(call, "allow_pickle", False)]
    assert not bad, f"np.load without allow_pickle=False: {bad}"
    text_uses = sum(len(re.findall(r"\b(?:np|numpy)\.load\b", p.read_text())) for p in PYTHON_FILES + SNAKE_FILES)
    assert text_uses == len(uses)


def test_no_other_unpickling_loader():
    pattern = re.compile(
        r"\b(?:pickle|cPickle|dill|joblib|cloudpickle)\.loads?\(|\bread_pickle\(|^\s*import (?:pickle|dill|joblib)\b",
        re.M,
    )
    offenders = [str(p.relative_to(REPO)) for p in PYTHON_FILES + SNAKE_FILES if pattern.search(p.read_text())]
    assert not offenders


def wildcard_name_pattern() -> tuple[str, dict[str, str]]:
    """NAME from rules/common.smk and the wildcard_constraints block's values, as written there."""
    text = (REPO / "rules" / "common.smk").read_text()
    name = ast.literal_eval(re.search(r"^NAME\s*=\s*(.+)$", text, re.M).group(1))
    block = re.search(r"^wildcard_constraints:\n((?:[ \t]+.*\n)+)", text, re.M).group(1)
    constraints = dict(re.findall(r"^\s+(\w+)\s*=\s*([^,\n]+),?\s*$", block, re.M))
    return name, constraints


def test_wildcard_values_cannot_leave_their_directory():
    name, constraints = wildcard_name_pattern()
    assert {key: constraints[key] for key in ("model", "checkpoint", "dimension")} == dict.fromkeys(
        ("model", "checkpoint", "dimension"), "NAME"
    )
    for value in ("../x", "a/b", ".hidden", "..", ".", "", "/abs", "a/../b", "x\n/y", "a\\b", "-flag"):
        assert re.fullmatch(name, value) is None, value
    for value in ("ok-name_1.0", "step0", "main", "ckpt_001", "Amber", "a..b"):
        assert re.fullmatch(name, value) is not None, value
    assert re.fullmatch(ast.literal_eval(constraints["demo"]), "../x") is None
    assert re.fullmatch(ast.literal_eval(constraints["n"]), "1/2") is None


def test_config_schema_names_match_the_wildcard_pattern():
    """A name the schema accepts is one the wildcards can match (and the other way round for a sample)."""
    schema = yaml.safe_load((REPO / "workflow_scripts" / "trusttrace" / "schemas" / "config.schema.yaml").read_text())
    pattern = schema["$defs"]["name"]["pattern"]
    name, _ = wildcard_name_pattern()
    for value in ("ok-name_1.0", "step0", "../x", "a/b", ".hidden", "-x", "a b"):
        assert (re.search(pattern, value) is not None) == (re.fullmatch(name, value) is not None), value


# ---- duplicate weights: tensor digests ---------------------------------------------------------------------------


def save_tensors(path: Path, tensors: dict, metadata: dict | None = None) -> Path:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, path, metadata=metadata)
    return path


def record_of(directory: Path, name: str, check: str) -> dict:
    from trusttrace.models import checkpoint_record

    (directory / "config.json").write_text('{"model_type": "llama"}')
    return {"checkpoint": name, **checkpoint_record(directory, None, check)}


def test_tensor_digest_sees_the_tensors_not_the_file(tmp_path):
    """Same tensors in another order with other metadata: another file sha256, the same tensor digests; one
    changed value, dtype or shape changes that tensor's digest only."""
    import hashlib

    import torch
    from trusttrace.models import combine_tensor_digests, tensor_digests

    tensors = {"a.weight": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b.bias": torch.ones(4)}
    first = save_tensors(tmp_path / "1.safetensors", tensors)
    second = save_tensors(tmp_path / "2.safetensors", dict(reversed(list(tensors.items()))), {"format": "pt"})
    assert hashlib.sha256(first.read_bytes()).digest() != hashlib.sha256(second.read_bytes()).digest()
    assert tensor_digests(first) == tensor_digests(second)
    # The digest of a tensor is sha256(name \0 dtype \0 shape \0 bytes), known here.
    expected = hashlib.sha256(b"b.bias\0F32\0[4]\0" + torch.ones(4).numpy().tobytes()).hexdigest()
    assert tensor_digests(first)["b.bias"] == expected
    for changed in (
        {**tensors, "a.weight": tensors["a.weight"] + 1},
        {**tensors, "a.weight": tensors["a.weight"].to(torch.float16)},
        {**tensors, "a.weight": tensors["a.weight"].reshape(3, 2)},
    ):
        digests = tensor_digests(save_tensors(tmp_path / "changed.safetensors", changed))
        assert digests["b.bias"] == expected and digests["a.weight"] != tensor_digests(first)["a.weight"]
    # However the tensors are split into files, the combined digest is the same.
    split = {
        **tensor_digests(save_tensors(tmp_path / "s1.safetensors", {"a.weight": tensors["a.weight"]})),
        **tensor_digests(save_tensors(tmp_path / "s2.safetensors", {"b.bias": tensors["b.bias"]})),
    }
    assert combine_tensor_digests(split) == combine_tensor_digests(tensor_digests(first))


def test_pickle_weights_digest_like_their_safetensors(pickle_only_dir, tiny_checkpoint_dir):
    from trusttrace.models import tensor_digests

    from_pickle = tensor_digests(pickle_only_dir / "pytorch_model.bin")
    from_safetensors = tensor_digests(tiny_checkpoint_dir / "model.safetensors")
    common = set(from_pickle) & set(from_safetensors)
    assert len(common) >= 10 and all(from_pickle[name] == from_safetensors[name] for name in common)


def test_duplicates_are_found_whole_and_by_shard(tmp_path):
    """c1 = c0 re-serialised (whole duplicate under tensors, missed by files); c2 shares c0's second shard only
    (found by both checks, which the combined weight hash alone would miss); c3 shares nothing."""
    import torch
    from trusttrace.models import duplicate_findings

    def shards(seed_a: int, seed_b: int) -> tuple[dict, dict]:
        return ({"a": torch.full((3,), float(seed_a))}, {"b": torch.full((2,), float(seed_b))})

    layout = {"c0": shards(0, 0), "c1": shards(0, 0), "c2": shards(2, 0), "c3": shards(3, 3)}
    for name, (first, second) in layout.items():
        metadata = {"format": "pt", "name": name} if name == "c1" else None
        save_tensors(tmp_path / name / "model-00001-of-00002.safetensors", first, metadata)
        save_tensors(tmp_path / name / "model-00002-of-00002.safetensors", second, metadata)
    tensors = [record_of(tmp_path / name, name, "tensors") for name in layout]
    assert [(f["checkpoints"], f["shared"]) for f in duplicate_findings(tensors)] == [
        (["c0", "c1"], "identical tensors (all weights)"),
        (["c0", "c2"], "identical tensors in model-00002-of-00002.safetensors"),
        (["c1", "c2"], "identical tensors in model-00002-of-00002.safetensors"),
    ]
    files = [record_of(tmp_path / name, name, "files") for name in layout]
    assert "tensors_sha256" not in files[0]
    assert [(f["checkpoints"], f["shared"]) for f in duplicate_findings(files)] == [
        (["c0", "c2"], "identical weight files in model-00002-of-00002.safetensors"),
    ]
    # A record written before tensor digests existed is compared by files.
    old = {k: v for k, v in tensors[0].items() if k not in ("tensors_sha256", "weight_file_tensors_sha256")}
    assert duplicate_findings([old, tensors[2]])[0]["shared"].startswith("identical weight files")


# ---- bad checkpoints: one line, before any compute ---------------------------------------------------------------


def test_a_checkpoint_that_is_not_a_causal_lm_is_refused(tmp_path, tiny_checkpoint_dir):
    """A BERT (masked-LM encoder) checkpoint directory with safetensors weights: refused by resolve_checkpoint_files
    (the first job of a checkpoint) naming the model, the directory and the architecture."""
    from transformers import BertConfig, BertForMaskedLM
    from trusttrace.models import resolve_checkpoint_files

    bert = BertForMaskedLM(
        BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    )
    bert.save_pretrained(tmp_path / "bert")
    with pytest.raises(TrustTraceError) as error:
        resolve_checkpoint_files(str(tmp_path / "bert"), None, model_name="encoder", allow_pickle_weights=False)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(
        f"model 'encoder': checkpoint directory {tmp_path / 'bert'}: config.json describes "
        "BertForMaskedLM (model_type 'bert'), not a causal language model"
    )
    # The same check lets the decoders through: the tiny Llama, and a config naming only a causal model_type.
    assert resolve_checkpoint_files(str(tiny_checkpoint_dir), None, model_name="tiny", allow_pickle_weights=False)[0]
    from trusttrace.models import check_causal_lm

    check_causal_lm({"model_type": "gpt_neox"}, "x")
    with pytest.raises(TrustTraceError, match="model_type 't5', not a causal language model"):
        check_causal_lm({"model_type": "t5"}, "x")


def test_the_usual_decoders_are_recognised_without_importing_transformers():
    """The known causal-LM classes pass the check without transformers (a resolve job saves ~2 s of imports); the
    static list is a subset of transformers' own causal-LM mapping, so it never lets anything else through."""
    import subprocess
    import sys

    from helpers import REPO
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    from trusttrace.models import KNOWN_CAUSAL_LM_CLASSES

    assert KNOWN_CAUSAL_LM_CLASSES <= set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    code = (
        "import sys; from trusttrace.models import check_causal_lm; "
        "check_causal_lm({'architectures': ['LlamaForCausalLM']}, 'x'); "
        "assert 'transformers' not in sys.modules and 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO / "workflow_scripts")
