"""A checkpoint's local copy (trusttrace.local_copy, rule materialise_checkpoint): the same weights in safetensors in
the compute dtype, refused when it belongs to another record; ``hub_cache: evict`` deletes exactly that revision
from the HF cache; in the workflow the copies are temp() and a re-made copy never reruns finished jobs.

A hub-style cache is built on disk (tests/hub_cache.py) and read offline, in subprocesses (huggingface_hub reads
HF_HOME and HF_HUB_OFFLINE once, at import) and through the workflow.
"""

from __future__ import annotations

import json
from pathlib import Path

import hub_cache
import numpy as np
import pytest
from helpers import job_stats, run_workflow
from test_hub_loading import hf_config, pickle_only, run_python

LLAMA, PYTHIA, PICKLED = "fake-org/llama-tiny", "fake-org/pythia-tiny", "fake-org/llama-pickled"


def build_hub(home: Path) -> dict:
    repos = {
        LLAMA: hub_cache.build_fake_repo(home, LLAMA, "llama", {"ckpt_000": 10, "ckpt_001": 11, "ckpt_002": 12}),
        PYTHIA: hub_cache.build_fake_repo(home, PYTHIA, "gpt_neox", {"step0": 0}),
    }
    source = Path(repos[LLAMA]["ckpt_000"]["source"])
    pickled = pickle_only(source, source.parent / "seed10-pickled")
    repos[PICKLED] = {"ckpt_000": {"commit": hub_cache.add_revision(home, PICKLED, "ckpt_000", pickled)}}
    return repos


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    home = tmp_path_factory.mktemp("hf_home")
    return home, build_hub(home)


# Runs offline in a fresh interpreter: resolve a revision's record as resolve_checkpoint does, make copies, load.
COPY_CODE = """
from pathlib import Path
import torch
from safetensors import safe_open
from trusttrace.errors import TrustTraceError
from trusttrace.local_copy import LOCAL_COPY_FILE, materialise_checkpoint
from trusttrace.models import load_recorded, resolve_record

def spec_of(repo, branch, **settings):
    return {"source": "hf", "repo": repo, "checkpoints": [{"name": branch}], "dtype": "float32", "device": "cpu",
            "trust_remote_code": False, "allow_pickle_weights": False, "duplicate_check": "tensors", **settings}

def logits(model, tokenizer):
    ids = tokenizer(["the sky is blue .", "a secret is not to share"], return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**ids).logits

def error_of(call):
    try:
        call()
    except TrustTraceError as error:
        return str(error)
    return None

out = {}
for repo, branch, settings in CASES:
    spec = spec_of(repo, branch, **settings)
    record = resolve_record(repo.split("/")[1], branch, spec)
    copy = Path(WORK) / f"{repo.replace('/', '--')}-{branch}-{spec['dtype']}"
    info = materialise_checkpoint(record, spec, copy, threads=1)
    original, tokenizer = load_recorded(record, spec, threads=1)
    loaded, _ = load_recorded(record, spec, threads=1, local_copy=copy)
    with safe_open(str(copy / "model.safetensors"), "pt") as weights:
        stored = sorted({str(weights.get_slice(k).get_dtype()) for k in weights.keys()})
    out[f"{repo}@{branch}/{spec['dtype']}"] = {
        "record_commit": record["commit"],
        "info": info,
        "files": sorted(p.name for p in copy.iterdir()),
        "stored_dtypes": stored,
        "loaded_dtypes": sorted({str(p.dtype) for p in loaded.parameters()}),
        "logits_equal": bool(torch.equal(logits(original, tokenizer), logits(loaded, tokenizer))),
        "state_equal": all(torch.equal(a, loaded.state_dict()[k]) for k, a in original.state_dict().items()),
        "same_keys": list(original.state_dict()) == list(loaded.state_dict()),
    }

# A copy whose JSON names another commit, a copy of another checkpoint, a copy in another dtype: refused.
spec = spec_of(LLAMA, "ckpt_000")
record = resolve_record("llama-tiny", "ckpt_000", spec)
copy = Path(WORK) / "fake-org--llama-tiny-ckpt_000-float32"
other = resolve_record("llama-tiny", "ckpt_001", spec_of(LLAMA, "ckpt_001"))
out["errors"] = {
    "other_checkpoint": error_of(lambda: load_recorded(other, spec, local_copy=copy)),
    "other_dtype": error_of(lambda: load_recorded(record, {**spec, "dtype": "bfloat16"}, local_copy=copy)),
    "pretrain": error_of(lambda: materialise_checkpoint({**record, "source": "pretrain"}, spec, Path(WORK) / "x")),
}
info_file = copy / LOCAL_COPY_FILE
info = json.loads(info_file.read_text())
info_file.write_text(json.dumps({**info, "commit": "0" * 40}))
out["errors"]["other_commit"] = error_of(lambda: load_recorded(record, spec, local_copy=copy))
info_file.unlink()
out["errors"]["unfinished"] = error_of(lambda: load_recorded(record, spec, local_copy=copy))
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def copies(hub, tmp_path_factory):
    home, _ = hub
    cases = [
        [LLAMA, "ckpt_000", {}],
        [LLAMA, "ckpt_000", {"dtype": "bfloat16"}],
        [PYTHIA, "step0", {}],
        [PICKLED, "ckpt_000", {"allow_pickle_weights": True}],
    ]
    work = tmp_path_factory.mktemp("copies")
    settings = f"import json\nCASES = json.loads({json.dumps(cases)!r})\nWORK = {str(work)!r}\nLLAMA = {LLAMA!r}\n"
    code = settings + COPY_CODE
    return run_python(code, hub_cache.offline_env(home))[0]


def test_a_float32_copy_loads_to_bitwise_the_same_model(hub, copies):
    _, repos = hub
    for key in (f"{LLAMA}@ckpt_000/float32", f"{PYTHIA}@step0/float32"):
        copy = copies[key]
        assert copy["logits_equal"] and copy["state_equal"] and copy["same_keys"], key
        assert copy["stored_dtypes"] == ["F32"] and copy["loaded_dtypes"] == ["torch.float32"]
        repo, branch = key.split("/float32")[0].split("@")
        assert copy["info"]["commit"] == copy["record_commit"] == repos[repo][branch]["commit"]
        assert copy["info"]["source_weights_sha256"] == repos[repo][branch]["weights_sha256"]
        assert copy["info"]["model"] == repo.split("/")[1] and copy["info"]["checkpoint"] == branch
        # Weights as safetensors only; the tokenizer and config come along.
        assert "model.safetensors" in copy["files"] and not any(f.endswith(".bin") for f in copy["files"])
        assert {"config.json", "tokenizer.json", "tokenizer_config.json", "local_copy.json"} <= set(copy["files"])


def test_the_copy_is_in_the_compute_dtype(copies):
    copy = copies[f"{LLAMA}@ckpt_000/bfloat16"]
    assert copy["stored_dtypes"] == ["BF16"] and copy["loaded_dtypes"] == ["torch.bfloat16"]
    assert copy["info"]["dtype"] == "bfloat16"
    # The same tensors as the original loaded in bfloat16, not merely close.
    assert copy["state_equal"] and copy["logits_equal"]


def test_a_pickle_revision_becomes_a_safetensors_copy(copies):
    copy = copies[f"{PICKLED}@ckpt_000/float32"]
    assert copy["state_equal"] and copy["logits_equal"]
    assert "model.safetensors" in copy["files"] and "pytorch_model.bin" not in copy["files"]


def test_a_copy_of_another_record_is_refused(copies):
    errors = copies["errors"]
    assert "commit '0000000000000000000000000000000000000000'" in errors["other_commit"]
    assert "checkpoint 'ckpt_000' (expected 'ckpt_001')" in errors["other_checkpoint"]
    assert "dtype 'float32' (expected 'bfloat16')" in errors["other_dtype"]
    assert "not a finished local copy" in errors["unfinished"]
    assert "already local safetensors" in errors["pretrain"]
    for message in errors.values():
        assert "\n" not in message and "llama-tiny" in message


# ---- hub_cache: evict --------------------------------------------------------------------------------------------

EVICT_CODE = """
import json
from pathlib import Path
from trusttrace.local_copy import evict_revision, materialise_checkpoint
from trusttrace.models import load_model_and_tokenizer, load_recorded, resolve_record

spec = {"source": "hf", "repo": LLAMA, "checkpoints": [{"name": "ckpt_000"}], "dtype": "float32", "device": "cpu",
        "trust_remote_code": False, "allow_pickle_weights": False, "duplicate_check": "files"}
record = resolve_record("llama", "ckpt_000", spec)
copy = Path(WORK) / "copy"
materialise_checkpoint(record, spec, copy, threads=1, hub_cache="evict")
model, _ = load_recorded(record, spec, local_copy=copy)
other, _ = load_model_and_tokenizer(LLAMA, "ckpt_001", model_name="llama")
print(json.dumps({"copy_loads": type(model).__name__, "other_loads": type(other).__name__,
                  "again": evict_revision(LLAMA, record["commit"])}))
"""


def test_evict_deletes_exactly_that_revision(tmp_path):
    home = tmp_path / "hf_home"
    repos = {LLAMA: hub_cache.build_fake_repo(home, LLAMA, "llama", {"ckpt_000": 10, "ckpt_001": 11})}
    folder = hub_cache.repo_folder(home, LLAMA)
    blobs_before = {p.name for p in (folder / "blobs").iterdir()}
    kept_snapshot = folder / "snapshots" / repos[LLAMA]["ckpt_001"]["commit"]
    kept_blobs = {p.resolve().name for p in kept_snapshot.iterdir()}
    (tmp_path / "work").mkdir()
    code = f"LLAMA = {LLAMA!r}\nWORK = {str(tmp_path / 'work')!r}\n" + EVICT_CODE
    out, _ = run_python(code, hub_cache.offline_env(home))
    assert out == {"copy_loads": "LlamaForCausalLM", "other_loads": "LlamaForCausalLM", "again": 0}
    assert sorted(p.name for p in (folder / "snapshots").iterdir()) == [repos[LLAMA]["ckpt_001"]["commit"]]
    assert sorted(p.name for p in (folder / "refs").iterdir()) == ["ckpt_001"]
    # The evicted revision's own blobs (its weights) are gone; the blobs the other revision links to are all kept.
    blobs_after = {p.name for p in (folder / "blobs").iterdir()}
    assert blobs_after == kept_blobs and repos[LLAMA]["ckpt_000"]["weights_sha256"] in blobs_before - blobs_after


def test_evict_is_refused_for_a_model_without_a_hub_cache():
    import yaml
    from helpers import REPO
    from trusttrace.config import check_config, validate_schema
    from trusttrace.errors import TrustTraceError

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    validate_schema(config)
    assert config["models"]["tiny"]["hub_cache"] == "keep"
    config["models"]["tiny"]["hub_cache"] = "evict"
    with pytest.raises(TrustTraceError, match=r"models\.tiny\.hub_cache: evict .* only applies to source: hf"):
        check_config(config, check_files=False)


# ---- through the workflow ---------------------------------------------------------------------------------------


@pytest.mark.workflow
def test_workflow_loads_copies_that_temp_removes_and_never_reruns_for(tmp_path):
    import pandas as pd
    from trusttrace.extract import extract_hidden_states
    from trusttrace.models import load_model_and_tokenizer
    from trusttrace.shards import read_shard

    home = tmp_path / "hf_home"
    repos = {LLAMA: hub_cache.build_fake_repo(home, LLAMA, "llama", {"ckpt_000": 10, "ckpt_001": 11, "ckpt_002": 12})}
    workdir = tmp_path / "run"
    env = hub_cache.offline_env(home)

    def cells(checkpoints):
        return [f"results/{step}/llama/{c}/reliability" for c in checkpoints for step in ("probe", "mi")]

    first = hf_config({"llama": (LLAMA, ["ckpt_000", "ckpt_001"], {})})
    run_workflow(workdir, first, "--cores", "2", *cells(["ckpt_000", "ckpt_001"]), env=env)
    for checkpoint in ("ckpt_000", "ckpt_001"):
        assert (workdir / f"logs/materialise_checkpoint/llama/{checkpoint}.log").is_file()
    assert not (workdir / "results/local_copies/llama/ckpt_000").exists()
    assert not (workdir / "results/local_copies/llama/ckpt_001").exists()
    # The shards hold the hidden states of the revision itself, loaded directly.
    model, tokenizer = load_model_and_tokenizer(repos[LLAMA]["ckpt_001"]["source"])
    data = pd.read_parquet(workdir / "results/data/reliability.parquet").set_index("row_id")
    shards = {layer: read_shard(workdir / "results/activations/llama/ckpt_001/reliability", layer) for layer in (1, 2)}
    statements = [data.loc[row_id, "statement"] for row_id in shards[1]["row_id"]]
    direct = extract_hidden_states(model, tokenizer, statements, [1, 2], batch_size=16, progress=False)
    for layer in (1, 2):
        np.testing.assert_allclose(np.stack(shards[layer]["activation"]), direct[layer], rtol=1e-4, atol=1e-5)

    # The copies are gone, and yet nothing is planned again.
    again = run_workflow(workdir, first, "--cores", "2", "--dry-run", *cells(["ckpt_000", "ckpt_001"]), env=env)
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout[-2000:]

    # A new checkpoint (and hub_cache: evict, which is not a cell setting): only its jobs, then the aggregates.
    second = hf_config({"llama": (LLAMA, ["ckpt_000", "ckpt_001", "ckpt_002"], {"hub_cache": "evict"})})
    plan = job_stats(run_workflow(workdir, second, "--dry-run", env=env))
    cell_rules = ("resolve_checkpoint", "verify_checkpoint", "materialise_checkpoint", "extract_activations")
    cell_rules += ("probe", "mutual_information")
    assert {rule: n for rule, n in plan.items() if rule in cell_rules} == dict.fromkeys(cell_rules, 1), plan
    assert "demo_dataset" not in plan and "prepare_dimension" not in plan
    run_workflow(workdir, second, "--cores", "2", *cells(["ckpt_000", "ckpt_001", "ckpt_002"]), env=env)
    snapshots = sorted(p.name for p in (hub_cache.repo_folder(home, LLAMA) / "snapshots").iterdir())
    assert snapshots == sorted(repos[LLAMA][c]["commit"] for c in ("ckpt_000", "ckpt_001"))
    assert not (workdir / "results/local_copies/llama/ckpt_002").exists()
    assert (workdir / "results/probe/llama/ckpt_002/reliability/layer=2.json").is_file()
