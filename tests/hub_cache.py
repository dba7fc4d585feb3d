"""Build a Hugging Face hub cache on disk, offline, for tests of loading checkpoints by repo id and revision.

The layout is the one ``huggingface_hub`` writes and reads (``$HF_HOME/hub``)::

    models--<org>--<name>/
        blobs/<content hash>                       the file contents, stored once
        refs/<branch>                              the commit a branch points to (40 hex digits, no newline)
        snapshots/<commit>/<file> -> ../../blobs/<content hash>

so that, with ``HF_HOME`` pointing at the parent of ``hub/`` and ``HF_HUB_OFFLINE=1``, ``snapshot_download``,
``hf_hub_download`` and ``from_pretrained(repo_id, revision=branch)`` resolve a branch to its commit and read the
files of that snapshot without any network.

The models are tiny (2 blocks, hidden size 16, a ~100-token word-level vocabulary) and made here with
``transformers``: a GPT-NeoX (Pythia's architecture, blocks at ``gpt_neox.layers``, tokenizer without a pad
token) and a Llama (blocks at ``model.layers``, bos/eos/unk but no pad token).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

WORDS = (
    "the a an is are was were be not no yes true false good bad kind cruel safe unsafe private public secret share "
    "people person man woman child friend doctor nurse teacher driver they he she it we you i my your their our "
    "this that these those of to in on at for with by from and or but if so because very quite rather movie film "
    "great terrible fine awful love hate like dislike sky blue green water cold hot fire earth sun moon city "
    "country food home work money phone address number password name told said know think say q a"
).split()


def make_tokenizer(kind: str):
    """A word-level fast tokenizer over WORDS (lower-cased, punctuation split off), with no pad token.

    ``kind="gpt_neox"``: one ``<|endoftext|>`` token as bos/eos/unk (as Pythia's tokenizer has); ``kind="llama"``:
    separate ``<s>``, ``</s>``, ``<unk>``.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>"] if kind == "gpt_neox" else ["<unk>", "<s>", "</s>"]
    vocab = {token: index for index, token in enumerate(specials + sorted(set(WORDS)) + list(".,?!'\"-:;"))}
    unk = specials[0]
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=unk))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation()])
    if kind == "gpt_neox":
        tokens = {"bos_token": unk, "eos_token": unk, "unk_token": unk}
    else:
        tokens = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, **tokens)
    assert tokenizer.pad_token is None
    return tokenizer


def make_model(kind: str, seed: int, vocab_size: int):
    """A tiny randomly initialised causal LM of the given architecture (seeded)."""
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    common = dict(
        vocab_size=vocab_size,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        bos_token_id=0,
        eos_token_id=0 if kind == "gpt_neox" else 2,
    )
    if kind == "gpt_neox":
        return GPTNeoXForCausalLM(GPTNeoXConfig(**common, rotary_pct=0.25)).eval()
    if kind == "llama":
        return LlamaForCausalLM(LlamaConfig(**common, num_key_value_heads=2, tie_word_embeddings=False)).eval()
    raise ValueError(f"unknown kind {kind!r}")


def save_checkpoint(directory: str | Path, kind: str, seed: int) -> Path:
    """Save a tiny model (safetensors) and its tokenizer to ``directory``; return the directory."""
    directory = Path(directory)
    tokenizer = make_tokenizer(kind)
    model = make_model(kind, seed, len(tokenizer))
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return directory


def repo_folder(hf_home: str | Path, repo_id: str) -> Path:
    return Path(hf_home) / "hub" / ("models--" + repo_id.replace("/", "--"))


def add_revision(hf_home: str | Path, repo_id: str, branch: str, source: str | Path) -> str:
    """Put every file of ``source`` into the cache as ``repo_id`` at ``branch``; return the commit sha.

    The commit is a deterministic 40-hex-digit hash of the branch name and the files, so two branches with the same
    files still get different commits (as two hub branches pointing at identical weights would).
    """
    folder = repo_folder(hf_home, repo_id)
    files = sorted(p for p in Path(source).iterdir() if p.is_file())
    commit_hash = hashlib.sha1(f"{repo_id}@{branch}".encode())
    contents = {}
    for path in files:
        data = path.read_bytes()
        content_hash = hashlib.sha256(data).hexdigest()
        contents[path.name] = (content_hash, data)
        commit_hash.update(f"{path.name}:{content_hash}".encode())
    commit = commit_hash.hexdigest()
    snapshot = folder / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (folder / "blobs").mkdir(parents=True, exist_ok=True)
    for name, (content_hash, data) in contents.items():
        blob = folder / "blobs" / content_hash
        if not blob.exists():
            blob.write_bytes(data)
        link = snapshot / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(blob, snapshot))
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / branch).write_text(commit)
    return commit


def build_fake_repo(hf_home: str | Path, repo_id: str, kind: str, branches: dict[str, int]) -> dict[str, dict]:
    """Cache ``repo_id`` with one branch per entry of ``branches`` (branch -> weight seed; equal seeds give
    identical weights). Returns {branch: {"commit", "weights_sha256", "source"}} where source is a directory
    holding the saved files (kept under ``hf_home/sources``)."""
    built: dict[int, Path] = {}
    out = {}
    sources = Path(hf_home) / "sources" / repo_id.replace("/", "--")
    for branch, seed in branches.items():
        if seed not in built:
            built[seed] = save_checkpoint(sources / f"seed{seed}", kind, seed)
        source = built[seed]
        commit = add_revision(hf_home, repo_id, branch, source)
        weights = hashlib.sha256((source / "model.safetensors").read_bytes()).hexdigest()
        out[branch] = {"commit": commit, "weights_sha256": weights, "source": str(source)}
    return out


def offline_env(hf_home: str | Path) -> dict[str, str]:
    """The environment of a process that must read only the fake cache: HF_HOME set, offline, and an endpoint
    that refuses connections in case anything still tried the network."""
    env = dict(os.environ)
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE", "HF_TOKEN"):
        env.pop(key, None)
    env.update(
        HF_HOME=str(hf_home),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_ENDPOINT="http://127.0.0.1:9",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_IMPLICIT_TOKEN="1",
        TOKENIZERS_PARALLELISM="false",
    )
    return env


if __name__ == "__main__":  # a quick look: python tests/hub_cache.py
    home = Path(tempfile.mkdtemp(prefix="hf_home_"))
    print(build_fake_repo(home, "fake-org/pythia-tiny", "gpt_neox", {"step0": 0, "step8": 1}))
    print(home)
