"""A checkpoint's local copy: its weights read from the HF cache (or a local directory) once and written as
safetensors in the model's compute dtype, with its config and tokenizer files, so that every job loading the
checkpoint reads a fast file instead of the original (Amber's branches: a 27 GB float32 pickle each).

The copy carries ``local_copy.json`` naming the record it was made from (model, checkpoint, commit, the record's
weight hash) and its own weights' hash and sizes; ``check_local_copy`` refuses a copy that does not belong to the
record a job was given. With ``hub_cache: evict`` the revision is deleted from the HF cache once the copy is
written and verified.
"""

from __future__ import annotations

import fnmatch
import gc
import logging
import shutil
from pathlib import Path

from trusttrace import io
from trusttrace.errors import TrustTraceError

LOCAL_COPY_FILE = "local_copy.json"
HUB_CACHE_SETTINGS = ("keep", "evict")
# What a copy takes over from the checkpoint besides the weights save_pretrained writes: tokenizer and other small
# files. Weight index files are left out (they name the original's weight files, not the copy's).
COPIED_FILES = ("*.json", "*.txt", "*.model", "*.tiktoken", "*.jinja")
NOT_COPIED = ("*.index.json", "optimizer.*", "training_args.bin", LOCAL_COPY_FILE)

log = logging.getLogger(__name__)


def _where(record: dict) -> str:
    return f"model {record['model']!r} checkpoint {record['checkpoint']!r}"


def state_digests(model) -> dict[str, str]:
    """sha256 of each tensor of a model's state dict (name, dtype, shape, bytes): what a copy must load back to."""
    import torch

    from trusttrace.models import _tensor_digest

    return {
        name: _tensor_digest(
            name,
            str(tensor.dtype),
            list(tensor.shape),
            tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().data,
        )
        for name, tensor in model.state_dict().items()
    }


def materialise_checkpoint(
    record: dict,
    spec: dict,
    destination: str | Path,
    *,
    threads: int | None = None,
    hub_cache: str = "keep",
) -> dict:
    """Write the local copy of the checkpoint ``record`` (resolve_checkpoint's JSON) to ``destination``; return
    the copy's ``local_copy.json`` content.

    ``spec``: the model's settings (``dtype``, ``trust_remote_code``, ``allow_pickle_weights``). The source must
    still hold the weights the record names (else one TrustTraceError, before anything is written); the copy is
    loaded back and must give the same tensors, bit for bit, before ``local_copy.json`` is written (last) and,
    with ``hub_cache: evict``, the revision is deleted from the HF cache.
    """
    from trusttrace.models import (
        load_model_and_tokenizer,
        resolve_checkpoint_files,
        set_threads,
        weight_files,
        weights_digest,
    )

    where = _where(record)
    if record["source"] not in ("hf", "local"):
        raise TrustTraceError(
            f"{where}: source {record['source']!r} checkpoints are already local safetensors; no copy is made"
        )
    if hub_cache not in HUB_CACHE_SETTINGS:
        raise TrustTraceError(f"{where}: hub_cache must be one of {HUB_CACHE_SETTINGS}, got {hub_cache!r}")
    if hub_cache == "evict" and record["source"] != "hf":
        raise TrustTraceError(
            f"{where}: hub_cache: evict only applies to source: hf (this model is {record['source']})"
        )
    set_threads(threads)
    revision = record["revision"] if record["source"] == "hf" else None
    source, _ = resolve_checkpoint_files(
        record["load_from"],
        revision,
        model_name=record["model"],
        allow_pickle_weights=spec["allow_pickle_weights"],
    )
    found = weights_digest(source)
    if found != record["weights_sha256"]:
        raise TrustTraceError(
            f"{where}: the weights at {source} (sha256 {found}) are not the ones its record names "
            f"({record['weights_sha256']}); rerun snakemake --forcerun resolve_checkpoint for it"
        )
    settings = {"model_name": record["model"], "dtype": spec["dtype"], "device": "cpu"}
    trust_remote_code = spec["trust_remote_code"]
    model, _ = load_model_and_tokenizer(
        str(source),
        **settings,
        trust_remote_code=trust_remote_code,
        allow_pickle_weights=spec["allow_pickle_weights"],
    )
    expected = state_digests(model)
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(destination)
    del model
    gc.collect()
    _copy_small_files(source, destination, trust_remote_code)
    # The copy is what every later job loads: check it the way they load it (safetensors only) before trusting it.
    copy, _ = load_model_and_tokenizer(
        str(destination), **settings, trust_remote_code=trust_remote_code, allow_pickle_weights=False
    )
    if state_digests(copy) != expected:
        raise TrustTraceError(f"{where}: the copy at {destination} does not load back to the weights it was made from")
    del copy
    gc.collect()
    files = weight_files(destination)
    if any(f.suffix != ".safetensors" for f in files):
        raise TrustTraceError(f"{where}: the copy at {destination} holds non-safetensors weights {files}")
    info = {
        "model": record["model"],
        "checkpoint": record["checkpoint"],
        "source": record["source"],
        "commit": record.get("commit"),
        "source_weights_sha256": record["weights_sha256"],
        "dtype": spec["dtype"],
        "trust_remote_code": trust_remote_code,
        "weights_sha256": weights_digest(destination),
        "weight_file_bytes": {f.name: f.stat().st_size for f in files},
    }
    io.write_json(destination / LOCAL_COPY_FILE, info)
    if hub_cache == "evict":
        freed = evict_revision(record["load_from"], record["commit"])
        log.info("%s: evicted revision %s of %s from the HF cache (%d bytes)", where, record["commit"], source, freed)
    return info


def _copy_small_files(source: Path, destination: Path, trust_remote_code: bool) -> None:
    """Config, tokenizer and other small files the copy has not written itself, as they are (custom code files
    only with trust_remote_code)."""
    patterns = COPIED_FILES + (("*.py",) if trust_remote_code else ())
    for path in sorted(source.iterdir()):
        name = path.name
        if (destination / name).exists() or not path.is_file():
            continue
        if any(fnmatch.fnmatch(name, p) for p in patterns) and not any(fnmatch.fnmatch(name, p) for p in NOT_COPIED):
            shutil.copyfile(path, destination / name)  # a cache link's content, not the link


def check_local_copy(directory: str | Path, record: dict, spec: dict) -> dict:
    """The copy's ``local_copy.json`` after checking that the copy belongs to ``record`` (model, checkpoint,
    commit, the record's weight hash), is in the model's ``dtype`` and holds its weight files at their written
    sizes (a copy cut short). The copy's weights are not hashed again here: every job would pay for it."""
    directory = Path(directory)
    where = _where(record)
    path = directory / LOCAL_COPY_FILE
    if not path.is_file():
        raise TrustTraceError(
            f"{where}: {directory} is not a finished local copy (no {LOCAL_COPY_FILE}); remake it with "
            "snakemake --forcerun materialise_checkpoint"
        )
    info = io.read_json(path)
    expected = {
        "model": record["model"],
        "checkpoint": record["checkpoint"],
        "commit": record.get("commit"),
        "source_weights_sha256": record["weights_sha256"],
        "dtype": spec["dtype"],
    }
    wrong = [
        f"{key} {info.get(key)!r} (expected {value!r})" for key, value in expected.items() if info.get(key) != value
    ]
    if wrong:
        raise TrustTraceError(
            f"{where}: the local copy at {directory} was made from another checkpoint or setting: {'; '.join(wrong)}; "
            "remake it with snakemake --forcerun materialise_checkpoint"
        )
    for name, size in info.get("weight_file_bytes", {}).items():
        file = directory / name
        if not file.is_file() or file.stat().st_size != size:
            raise TrustTraceError(
                f"{where}: the local copy's {file} is missing or not {size} bytes (cut short?); remake it with "
                "snakemake --forcerun materialise_checkpoint"
            )
    return info


def evict_revision(repo_id: str, commit: str) -> int:
    """Delete one revision of a model repo from the HF cache (HF_HOME / HF_HUB_CACHE) with huggingface_hub's cache
    API: its snapshot, the refs that point to it and the blobs no other revision uses. Returns the bytes freed
    (0 when the revision is not cached)."""
    import dataclasses

    from huggingface_hub import scan_cache_dir

    cache = scan_cache_dir()
    repos = [r for r in cache.repos if r.repo_type == "model" and r.repo_id == repo_id]
    if not any(revision.commit_hash == commit for repo in repos for revision in repo.revisions):
        log.info("%s@%s is not in the HF cache: nothing to evict", repo_id, commit)
        return 0
    # Only this repository's revision: another repository (a mirror) may hold the same commit.
    strategy = dataclasses.replace(cache, repos=frozenset(repos)).delete_revisions(commit)
    strategy.execute()
    return strategy.expected_freed_size
