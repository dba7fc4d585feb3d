"""Loading checkpoints from the Hugging Face hub by revision, through the real code path, offline.

A hub-style cache is built on disk (tests/hub_cache.py: refs/<branch> -> commit, snapshots/<commit>/ linking to
blobs/) holding tiny GPT-NeoX (Pythia-like) and Llama models made here, two branches each; then with HF_HOME
pointing at it and HF_HUB_OFFLINE=1 the models load by repo id and revision, in a subprocess (huggingface_hub
reads HF_HOME and HF_HUB_OFFLINE once, at import) and through the workflow (snakemake with that environment).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import hub_cache
import pytest
from helpers import run_workflow

PYTHIA, LLAMA, DUPLICATE = "fake-org/pythia-tiny", "fake-org/llama-tiny", "fake-org/pythia-dup"
# A revision holding only pickle weights (pytorch_model.bin), as older hub uploads do.
PICKLED = "fake-org/pythia-pickled"
# step8 holds step0's tensors saved again (another tensor order, other metadata): another file, the same weights.
RESAVED = "fake-org/pythia-resaved"


def resave_tensors(source: Path, destination: Path) -> Path:
    """Copy a checkpoint with its weights re-serialised: same tensors, reversed order, extra metadata."""
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(source, destination)
    tensors = load_file(source / "model.safetensors")
    save_file(
        dict(reversed(list(tensors.items()))),
        destination / "model.safetensors",
        metadata={"format": "pt", "saved_by": "another tool"},
    )
    return destination


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """HF_HOME with three cached repos: Pythia-like and Llama-like with different weights on their two branches,
    and a Pythia-like repo whose two branches hold identical weights."""
    home = tmp_path_factory.mktemp("hf_home")
    repos = {
        PYTHIA: hub_cache.build_fake_repo(home, PYTHIA, "gpt_neox", {"step0": 0, "step8": 1}),
        LLAMA: hub_cache.build_fake_repo(home, LLAMA, "llama", {"ckpt_000": 10, "ckpt_001": 11}),
        DUPLICATE: hub_cache.build_fake_repo(home, DUPLICATE, "gpt_neox", {"step0": 5, "step8": 5}),
        RESAVED: hub_cache.build_fake_repo(home, RESAVED, "gpt_neox", {"step0": 5, "step4": 6}),
    }
    step0 = Path(repos[RESAVED]["step0"]["source"])
    resaved = resave_tensors(step0, step0.parent / "seed5-resaved")
    repos[RESAVED]["step8"] = {
        "commit": hub_cache.add_revision(home, RESAVED, "step8", resaved),
        "source": str(resaved),
    }
    pickled = pickle_only(step0, step0.parent / "seed5-pickled")
    repos[PICKLED] = {
        "step0": {"commit": hub_cache.add_revision(home, PICKLED, "step0", pickled), "source": str(pickled)}
    }
    return home, repos


def pickle_only(source: Path, destination: Path) -> Path:
    """Copy a checkpoint with its weights as a pickle (pytorch_model.bin) and no safetensors."""
    import shutil

    import torch
    from safetensors.torch import load_file

    shutil.copytree(source, destination)
    torch.save(load_file(destination / "model.safetensors"), destination / "pytorch_model.bin")
    (destination / "model.safetensors").unlink()
    return destination


def run_python(code: str, env: dict) -> tuple[dict, str]:
    """Run ``code`` in a fresh interpreter with ``env``; it prints one JSON object on its last stdout line."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise AssertionError(f"subprocess failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


# ---- the cache itself ------------------------------------------------------------------------------------------


def test_fake_cache_has_the_hub_layout(hub):
    home, repos = hub
    folder = hub_cache.repo_folder(home, PYTHIA)
    for branch, built in repos[PYTHIA].items():
        assert (folder / "refs" / branch).read_text() == built["commit"]
        weights = folder / "snapshots" / built["commit"] / "model.safetensors"
        assert weights.is_symlink() and weights.resolve().parent == folder / "blobs"
        assert weights.resolve().name == built["weights_sha256"]
    assert repos[PYTHIA]["step0"]["weights_sha256"] != repos[PYTHIA]["step8"]["weights_sha256"]
    assert repos[DUPLICATE]["step0"]["commit"] != repos[DUPLICATE]["step8"]["commit"]
    assert repos[DUPLICATE]["step0"]["weights_sha256"] == repos[DUPLICATE]["step8"]["weights_sha256"]


# ---- loading by repo id and revision, offline ------------------------------------------------------------------

LOAD_CODE = """
import json, sys
import torch
from safetensors.torch import load_file
from trusttrace.errors import TrustTraceError
from trusttrace.models import decoder_blocks, load_model_and_tokenizer, resolve_checkpoint_files, weights_digest

cases = json.loads(sys.argv[1]) if len(sys.argv) > 1 else CASES
out = {"loaded": [], "errors": {}}
for repo, branch, source in cases:
    directory, commit = resolve_checkpoint_files(repo, branch, model_name="m", allow_pickle_weights=False)
    saved = load_file(source + "/model.safetensors")
    row = {"repo": repo, "branch": branch, "commit": commit, "directory": str(directory),
           "digest": weights_digest(directory)}
    for how, revision in (("by_branch", branch), ("by_commit", commit)):
        model, tokenizer = load_model_and_tokenizer(repo, revision, model_name="m")
        state = model.state_dict()
        # transformers 5 loads GPT-NeoX's saved embed_out.weight as lm_head.weight
        loaded = {k: state.get(k, state.get({"embed_out.weight": "lm_head.weight"}.get(k))) for k in saved}
        row[how] = {
            "equal": all(loaded[k] is not None and torch.equal(loaded[k], saved[k]) for k in saved),
            "class": type(model).__name__,
            "blocks": len(decoder_blocks(model)),
            "pad": tokenizer.pad_token, "eos": tokenizer.eos_token, "side": tokenizer.padding_side,
        }
    out["loaded"].append(row)

def error_of(call):
    try:
        call()
    except TrustTraceError as error:
        return str(error)
    return None

out["errors"]["resolve_missing_revision"] = error_of(
    lambda: resolve_checkpoint_files(PYTHIA, "step99", model_name="pythia", allow_pickle_weights=False))
out["errors"]["load_missing_revision"] = error_of(
    lambda: load_model_and_tokenizer(PYTHIA, "step99", model_name="pythia"))
out["errors"]["resolve_missing_repo"] = error_of(
    lambda: resolve_checkpoint_files("fake-org/absent", "main", model_name="absent", allow_pickle_weights=False))
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def offline_load(hub):
    home, repos = hub
    cases = [[repo, branch, built["source"]] for repo in (PYTHIA, LLAMA) for branch, built in repos[repo].items()]
    code = f"CASES = {json.dumps(cases)}\nPYTHIA = {PYTHIA!r}\n" + textwrap.dedent(LOAD_CODE)
    return run_python(code, hub_cache.offline_env(home))


def test_revisions_load_offline_with_their_weights_and_commit(hub, offline_load):
    home, repos = hub
    result, _ = offline_load
    assert len(result["loaded"]) == 4
    for row in result["loaded"]:
        built = repos[row["repo"]][row["branch"]]
        assert row["commit"] == built["commit"]
        assert Path(row["directory"]) == hub_cache.repo_folder(home, row["repo"]) / "snapshots" / built["commit"]
        assert row["digest"] == built["weights_sha256"]
        for how in ("by_branch", "by_commit"):
            loaded = row[how]
            assert loaded["equal"], (row["repo"], row["branch"], how)
            assert loaded["blocks"] == 2
            # Neither tokenizer has a pad token: the end-of-text token pads, on the right.
            assert loaded["pad"] == loaded["eos"] and loaded["side"] == "right"
        expected = "GPTNeoXForCausalLM" if row["repo"] == PYTHIA else "LlamaForCausalLM"
        assert row["by_branch"]["class"] == row["by_commit"]["class"] == expected


def test_missing_revision_is_one_clear_error(offline_load):
    errors = offline_load[0]["errors"]
    for key in ("resolve_missing_revision", "load_missing_revision"):
        message = errors[key]
        assert message is not None, key
        assert "\n" not in message
        assert "'pythia'" in message and PYTHIA in message and "'step99'" in message
        assert "HF_HUB_OFFLINE=1" in message and "HF_HOME=" in message
    assert "'absent'" in errors["resolve_missing_repo"] and "'main'" in errors["resolve_missing_repo"]


def test_resolved_commit_loads_from_the_cache_without_the_network(hub):
    """Online but unreachable (a refusing endpoint, HF_HUB_OFFLINE unset): a branch still resolves from the cache,
    and loading the resolved commit never tries the network (no per-file requests, no retries)."""
    home, repos = hub
    env = {**hub_cache.offline_env(home), "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0"}
    code = f"""
    import json
    from trusttrace.models import load_model_and_tokenizer, resolve_checkpoint_files
    directory, commit = resolve_checkpoint_files({LLAMA!r}, "ckpt_001", model_name="llama", allow_pickle_weights=False)
    model, tokenizer = load_model_and_tokenizer({LLAMA!r}, commit, model_name="llama")
    print(json.dumps({{"commit": commit, "class": type(model).__name__}}))
    """
    result, stderr = run_python(code, env)
    assert result == {"commit": repos[LLAMA]["ckpt_001"]["commit"], "class": "LlamaForCausalLM"}
    assert "/resolve/" not in stderr and "Retrying" not in stderr


# ---- architectures, tokenizers, loader arguments (in process, local directories) -------------------------------


@pytest.mark.parametrize("repo,blocks_path", [(PYTHIA, "gpt_neox.layers"), (LLAMA, "model.layers")])
def test_gpt_neox_and_llama_extract_with_padding(hub, repo, blocks_path):
    import numpy as np
    from trusttrace.extract import extract_hidden_states
    from trusttrace.models import decoder_blocks, load_model_and_tokenizer

    _, repos = hub
    source = next(iter(repos[repo].values()))["source"]
    model, tokenizer = load_model_and_tokenizer(source)
    assert tokenizer.pad_token is not None and tokenizer.padding_side == "right"
    assert decoder_blocks(model) is model.get_submodule(blocks_path)
    statements = ["the sky is blue .", "a secret is not to share with people you know", "no", "good film"]
    batched = extract_hidden_states(model, tokenizer, statements, [0, 1, 2], batch_size=4, progress=False)
    alone = extract_hidden_states(model, tokenizer, statements, [0, 1, 2], batch_size=1, progress=False)
    for layer in (0, 1, 2):
        assert batched[layer].shape == (4, 16)
        # Padding never leaks in: rows padded in a batch equal the same rows run alone.
        np.testing.assert_allclose(batched[layer], alone[layer], rtol=1e-4, atol=1e-5)


def test_trust_remote_code_and_pickles_stay_off_unless_configured(monkeypatch):
    import transformers
    from trusttrace.models import load_model_and_tokenizer

    calls = []

    class FakeTokenizer:
        pad_token, eos_token, unk_token, bos_token, padding_side = None, "</s>", None, None, "left"

    class FakeModel:
        def to(self, device):
            return self

        def eval(self):
            return self

    def recorder(result):
        return classmethod(lambda cls, location, **kwargs: calls.append((cls.__name__, location, kwargs)) or result())

    monkeypatch.setattr(
        transformers, "AutoTokenizer", type("AutoTokenizer", (), {"from_pretrained": recorder(FakeTokenizer)})
    )
    monkeypatch.setattr(
        transformers, "AutoModelForCausalLM", type("AutoModelForCausalLM", (), {"from_pretrained": recorder(FakeModel)})
    )
    _, tokenizer = load_model_and_tokenizer("some/dir")
    assert tokenizer.pad_token == "</s>" and tokenizer.padding_side == "right"
    assert [(name, kwargs["trust_remote_code"]) for name, _, kwargs in calls] == [
        ("AutoTokenizer", False),
        ("AutoModelForCausalLM", False),
    ]
    assert calls[1][2]["use_safetensors"] is True and calls[1][2]["revision"] is None
    calls.clear()
    load_model_and_tokenizer("org/name", "main", trust_remote_code=True, allow_pickle_weights=True)
    assert [kwargs["trust_remote_code"] for _, _, kwargs in calls] == [True, True]
    assert calls[1][2]["use_safetensors"] is None and calls[1][2]["revision"] == "main"


def test_weights_digest_takes_the_blob_name_of_cached_files(tmp_path):
    from trusttrace.models import weights_digest

    blobs, snapshot = tmp_path / "blobs", tmp_path / "snapshots" / ("c" * 40)
    blobs.mkdir()
    snapshot.mkdir(parents=True)
    for name, blob in (("model-00001-of-00002.safetensors", "a" * 64), ("model-00002-of-00002.safetensors", "b" * 64)):
        (blobs / blob).write_bytes(b"not the content the name says")  # the name is trusted: never read
        (snapshot / name).symlink_to(os.path.relpath(blobs / blob, snapshot))
    lines = f"model-00001-of-00002.safetensors {'a' * 64}\nmodel-00002-of-00002.safetensors {'b' * 64}\n"
    assert weights_digest(snapshot) == hashlib.sha256(lines.encode()).hexdigest()
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "model.safetensors").write_bytes(b"weights")
    (plain / "optimizer.safetensors").write_bytes(b"ignored")
    assert weights_digest(plain) == hashlib.sha256(b"weights").hexdigest()


# ---- through the workflow ---------------------------------------------------------------------------------------


def hf_config(models: dict) -> dict:
    return {
        "models": {
            name: {
                "source": "hf",
                "repo": repo,
                "checkpoints": [{"name": c} for c in checkpoints],
                "device": "cpu",
                "batch_size": 16,
                **extra,
            }
            for name, (repo, checkpoints, extra) in models.items()
        },
        "dimensions": {"reliability": {"demo": "reliability", "demo_size": 60, "trustworthy_label": 1}},
        "probe": {"ci_level": 0.95},
        "mi": {"max_samples": 200},
        "steering": {"enabled": False},
    }


def snakemake(workdir: Path, config: dict, home: Path, *targets: str, check: bool = True):
    return run_workflow(workdir, config, "--cores", "2", *targets, env=hub_cache.offline_env(home), check=check)


@pytest.mark.workflow
def test_workflow_extracts_and_probes_hf_revisions_offline(hub, tmp_path):
    home, repos = hub
    config = hf_config({"pythia": (PYTHIA, ["step0", "step8"], {}), "llama": (LLAMA, ["ckpt_000", "ckpt_001"], {})})
    targets = [
        f"results/probe/{model}/{checkpoint}/reliability"
        for model, repo in (("pythia", PYTHIA), ("llama", LLAMA))
        for checkpoint in repos[repo]
    ]
    targets += ["results/models/pythia/_integrity.json", "results/models/llama/_integrity.json"]
    snakemake(tmp_path, config, home, *targets)
    for model, repo in (("pythia", PYTHIA), ("llama", LLAMA)):
        for checkpoint, built in repos[repo].items():
            record = json.loads((tmp_path / f"results/models/{model}/{checkpoint}.json").read_text())
            assert record["commit"] == built["commit"] and record["revision"] == built["commit"]
            assert record["requested_revision"] == checkpoint and record["load_from"] == repo
            assert record["weights_sha256"] == built["weights_sha256"]
            assert record["num_layers"] == 2
            manifest = json.loads(
                (tmp_path / f"results/activations/{model}/{checkpoint}/reliability/manifest.json").read_text()
            )
            assert manifest["weights_sha256"] == built["weights_sha256"]
            cells = sorted((tmp_path / f"results/probe/{model}/{checkpoint}/reliability").glob("layer=*.json"))
            assert [c.name for c in cells] == [f"layer={layer}.json" for layer in range(3)]
        integrity = json.loads((tmp_path / f"results/models/{model}/_integrity.json").read_text())
        assert integrity["duplicates"] == []


@pytest.mark.workflow
def test_identical_branches_fail_the_integrity_check_unless_warned(hub, tmp_path):
    home, _ = hub
    target = "results/models/dup/_integrity.json"
    (tmp_path / "error").mkdir()
    failed = snakemake(
        tmp_path / "error", hf_config({"dup": (DUPLICATE, ["step0", "step8"], {})}), home, target, check=False
    )
    assert failed.returncode != 0
    log_path = tmp_path / "error/logs/verify_checkpoint/dup/step8.log"
    assert log_path.is_file(), f"the gate did not run:\n{failed.stdout[-2000:]}\n{failed.stderr[-3000:]}"
    last = log_path.read_text().strip().splitlines()[-1]
    assert "identical weights: step0 = step8: identical tensors (all weights)" in last, last
    assert "duplicate_weights: warn" in last
    assert (tmp_path / "error/results/models/dup/step0.verified").is_file()
    assert not (tmp_path / "error/results/models/dup/step8.verified").exists()
    assert not (tmp_path / "error" / target).exists()
    (tmp_path / "warn").mkdir()
    snakemake(
        tmp_path / "warn",
        hf_config({"dup": (DUPLICATE, ["step0", "step8"], {"duplicate_weights": "warn"})}),
        home,
        target,
    )
    assert json.loads((tmp_path / "warn" / target).read_text())["duplicates"] == [["step0", "step8"]]


@pytest.mark.workflow
def test_the_gate_stops_every_job_of_a_duplicate_even_with_keep_going(hub, tmp_path):
    """step8 holds step0's tensors in another file (another tensor order, other metadata): the file hashes differ,
    the tensor digests do not. With --keep-going (the SLURM profile's setting) the other checkpoints' cells are
    made and none of step8's: its extraction waits for its gate, which fails. duplicate_check: files lets it by."""
    home, _ = hub
    checkpoints = ["step0", "step4", "step8"]
    targets = [f"results/probe/resaved/{c}/reliability" for c in checkpoints]
    result = snakemake(
        tmp_path / "tensors",
        hf_config({"resaved": (RESAVED, checkpoints, {})}),
        home,
        *targets,
        "--keep-going",
        check=False,
    )
    assert result.returncode != 0
    done = tmp_path / "tensors" / "results"
    assert [c for c in checkpoints if (done / f"probe/resaved/{c}/reliability").is_dir()] == ["step0", "step4"]
    assert not (done / "activations/resaved/step8").exists()
    records = {c: json.loads((done / f"models/resaved/{c}.json").read_text()) for c in checkpoints}
    assert records["step0"]["weights_sha256"] != records["step8"]["weights_sha256"]
    assert records["step0"]["tensors_sha256"] == records["step8"]["tensors_sha256"]
    last = (tmp_path / "tensors/logs/verify_checkpoint/resaved/step8.log").read_text().strip().splitlines()[-1]
    assert "step0 = step8: identical tensors (all weights)" in last, last
    gate = json.loads((done / "models/resaved/step4.verified").read_text())
    assert gate["compared_with"] == ["step0"] and gate["duplicates"] == []

    files_only = hf_config({"resaved": (RESAVED, checkpoints, {"duplicate_check": "files"})})
    snakemake(tmp_path / "files", files_only, home, "results/models/resaved/_integrity.json")
    summary = json.loads((tmp_path / "files/results/models/resaved/_integrity.json").read_text())
    assert summary["duplicates"] == [] and summary["duplicate_check"] == ["files"]


def test_a_pickle_only_revision_is_refused_unless_allowed(hub):
    """A hub revision with only pytorch_model.bin: one line naming the model and revision, before anything is loaded;
    with allow_pickle_weights the .bin is fetched (from the cache here) and found."""
    home, repos = hub
    code = f"""
import json
from trusttrace.errors import TrustTraceError
from trusttrace.models import resolve_checkpoint_files
out = {{}}
try:
    resolve_checkpoint_files({PICKLED!r}, "step0", model_name="legacy", allow_pickle_weights=False)
except TrustTraceError as error:
    out["refused"] = str(error)
directory, commit = resolve_checkpoint_files({PICKLED!r}, "step0", model_name="legacy", allow_pickle_weights=True)
out["allowed"] = [commit, sorted(p.name for p in directory.iterdir())]
print(json.dumps(out))
"""
    out, _ = run_python(code, hub_cache.offline_env(home))
    assert out["refused"] == (
        f"model 'legacy' ({PICKLED}) revision 'step0': no safetensors weights in this revision; it may hold only "
        "pickle (.bin) weights: set allow_pickle_weights: true for this model if you trust its publisher"
    )
    commit, files = out["allowed"]
    assert commit == repos[PICKLED]["step0"]["commit"] and "pytorch_model.bin" in files
    assert not any(name.endswith(".safetensors") for name in files)


@pytest.mark.workflow
def test_workflow_names_a_revision_that_is_not_cached(hub, tmp_path):
    home, _ = hub
    result = snakemake(
        tmp_path,
        hf_config({"pythia": (PYTHIA, ["step0", "step99"], {})}),
        home,
        "results/models/pythia/step99.json",
        check=False,
    )
    assert result.returncode != 0
    last = (tmp_path / "logs/resolve_checkpoint/pythia/step99.log").read_text().strip().splitlines()[-1]
    assert f"model 'pythia' ({PYTHIA}) revision 'step99': not in the HF cache" in last
    assert "HF_HUB_OFFLINE=1" in last
