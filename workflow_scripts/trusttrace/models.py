"""Loading checkpoints (pre-trained here, local directories, or the Hugging Face hub by revision) safely, and
finding a model's transformer blocks without assuming an architecture.

Weights load from safetensors only unless the config allows pickles for that model; ``trust_remote_code`` is off
unless the config turns it on for that model.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from trusttrace import io
from trusttrace.errors import TrustTraceError

DTYPES = ("float32", "bfloat16", "float16")
COMMIT = re.compile("[0-9a-f]{40}")
SHA256 = re.compile("[0-9a-f]{64}")
# What loading a checkpoint from the hub needs (Amber's branches also hold eval_*.json: small, harmless).
SNAPSHOT_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.py", "*.tiktoken", "*.jinja"]


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise TrustTraceError("device: cuda was configured but torch sees no CUDA device; use device: auto or cpu")
    return device


def torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def checkpoint_location(spec: dict, checkpoint: str, pretrain_dir: str | None = None) -> tuple[str, str | None]:
    """(what from_pretrained gets, revision or None) for one checkpoint of a model spec from the config."""
    entry = next(c for c in spec["checkpoints"] if c["name"] == checkpoint)
    if spec["source"] == "hf":
        return spec["repo"], entry.get("revision", checkpoint)
    if spec["source"] == "local":
        return entry.get("path", str(Path(spec.get("path", ".")) / checkpoint)), None
    if pretrain_dir is None:
        raise ValueError("a pretrain checkpoint needs its directory")
    return pretrain_dir, None


def load_model_and_tokenizer(
    location: str,
    revision: str | None = None,
    *,
    model_name: str = "",
    dtype: str = "float32",
    device: str = "cpu",
    trust_remote_code: bool = False,
    allow_pickle_weights: bool = False,
    device_map: str | dict | None = None,
    load_in: str | None = None,
):
    """``AutoModelForCausalLM/AutoTokenizer.from_pretrained(location, revision=...)`` in eval mode.

    ``device_map`` (e.g. ``"auto"``) is passed to ``from_pretrained`` (accelerate places the blocks; ``device`` is
    then not applied); ``load_in: 8bit | 4bit`` quantises through bitsandbytes, imported only then.

    The tokenizer pads on the right with a pad token (the end-of-text token when the model has none); the
    extraction picks each row's last real token from the attention mask, so padding never leaks in. A revision
    that is neither cached nor reachable (``HF_HUB_OFFLINE=1``, no network) raises one TrustTraceError naming the
    model and revision.
    """
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoTokenizer

    where = _where(model_name, location, revision)
    from_hub = revision is not None
    if from_hub and COMMIT.fullmatch(revision):
        # A commit is immutable: when resolve_checkpoint already put its files in the cache, load them from there
        # and never ask the hub again (no HEAD request per file, no retries on a flaky network).
        cached = cached_snapshot(location, revision)
        if cached is not None:
            location, revision = str(cached), None
    kwargs = {"revision": revision, "trust_remote_code": trust_remote_code}
    placement = {} if device_map is None else {"device_map": device_map}
    if load_in is not None:
        placement["quantization_config"] = _quantization(load_in, where)
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(
            location,
            dtype=torch_dtype(dtype),
            use_safetensors=None if allow_pickle_weights else True,
            **placement,
            **kwargs,
        )
    except (OSError, ValueError, SafetensorError) as error:
        # SafetensorError: a truncated or corrupt weights file (e.g. a copy cut short), named here in one line.
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        hints = []
        if isinstance(error, SafetensorError):
            hints.append("a weights file is truncated or corrupt: rebuild or re-download this checkpoint")
        elif from_hub:
            hints.append(
                f"not in the HF cache (HF_HOME={os.environ.get('HF_HOME', '~/.cache/huggingface')}) or not "
                f"reachable (HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '0')})"
            )
        if not allow_pickle_weights and not isinstance(error, SafetensorError):
            hints.append("or no safetensors weights (allow_pickle_weights is off)")
        raise TrustTraceError(f"{where}: cannot load ({first})" + ("; " + ", ".join(hints) if hints else "")) from None
    if tokenizer.pad_token is None:
        # Padding is masked out and never read back, so any existing token will do; none is added (that would
        # change the vocabulary the embeddings were trained for).
        fallback = tokenizer.eos_token or tokenizer.unk_token or tokenizer.bos_token
        tokenizer.pad_token = fallback if fallback is not None else tokenizer.convert_ids_to_tokens(0)
    tokenizer.padding_side = "right"
    if not placement:
        model.to(device)
    model.eval()
    return model, tokenizer


def _quantization(load_in: str, where: str):
    """A BitsAndBytesConfig for ``load_in`` (8bit or 4bit); bitsandbytes is only needed when asked for."""
    import importlib.util

    from transformers import BitsAndBytesConfig

    if load_in not in ("8bit", "4bit"):
        raise TrustTraceError(f"{where}: load_in must be 8bit or 4bit, got {load_in!r}")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise TrustTraceError(f"{where}: load_in: {load_in} needs the bitsandbytes package (pip install bitsandbytes)")
    return BitsAndBytesConfig(load_in_8bit=load_in == "8bit", load_in_4bit=load_in == "4bit")


def set_threads(threads: int | None) -> None:
    """torch's CPU threads for a job (None: torch's default)."""
    if threads is not None:
        import torch

        torch.set_num_threads(int(threads))


def load_recorded(record: dict, spec: dict, threads: int | None = None, local_copy: str | Path | None = None):
    """(model, tokenizer) of a checkpoint resolved by ``resolve_checkpoint`` (its JSON record), loaded with the
    model's settings from the config (dtype, device or device_map, load_in, remote code, pickle weights);
    ``threads``: torch's CPU threads for the job.

    ``local_copy``: the checkpoint's local copy (``trusttrace.local_copy``, rule materialise_checkpoint), loaded
    instead of the original after checking that it belongs to ``record``; always safetensors, so pickles stay off.
    None or empty (a rule input with no copy: pre-trained checkpoints are local safetensors already): the original.
    """
    set_threads(threads)
    if local_copy:
        from trusttrace.local_copy import check_local_copy

        check_local_copy(local_copy, record, spec)
        location, revision, allow_pickle_weights = str(local_copy), None, False
    else:
        location = record["load_from"]
        revision = record["revision"] if record["source"] == "hf" else None
        allow_pickle_weights = spec["allow_pickle_weights"]
    return load_model_and_tokenizer(
        location,
        revision,
        model_name=record["model"],
        dtype=spec["dtype"],
        device=resolve_device(spec["device"]),
        trust_remote_code=spec["trust_remote_code"],
        allow_pickle_weights=allow_pickle_weights,
        device_map=spec.get("device_map"),
        load_in=spec.get("load_in"),
    )


def num_hidden_layers(model) -> int:
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    for key in ("num_hidden_layers", "n_layer", "num_layers"):
        if getattr(config, key, None) is not None:
            return int(getattr(config, key))
    raise TrustTraceError(f"cannot tell the number of layers of {type(model).__name__} from its config")


def decoder_blocks(model):
    """The model's transformer blocks: the one ModuleList whose length is the config's layer count.

    Works for Llama (model.layers), GPT-NeoX/Pythia (gpt_neox.layers), OLMo, GPT-2 (transformer.h) without
    naming any of them.
    """
    import torch

    count = num_hidden_layers(model)
    found = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m) == count]
    if len(found) != 1:
        raise TrustTraceError(
            f"{type(model).__name__}: found {len(found)} ModuleLists of length {count}; "
            "cannot tell which are the blocks"
        )
    return found[0]


def weight_file_sha256(path: str | Path) -> str:
    """sha256 of a (weight) file's content.

    A file of the HF cache is a link to ``blobs/<name>``, and for the large (LFS) files the blob's name is the
    LFS object id, i.e. the sha256 of the content: that name is used instead of reading the file again (an Amber
    checkpoint is ~27 GB). Anything else is hashed.
    """
    path = Path(path)
    if path.is_symlink():
        target = path.resolve()
        if target.parent.name == "blobs" and SHA256.fullmatch(target.name):
            return target.name
    return io.file_sha256(path)


def weight_files(directory: str | Path) -> list[Path]:
    """A checkpoint's weight files: the safetensors files, else the .bin files, in name order (no optimizer)."""
    directory = Path(directory)
    not_weights = ("optimizer.safetensors", "training_args.bin")
    safetensors = [f for f in sorted(directory.glob("*.safetensors")) if f.name not in not_weights]
    return safetensors or [f for f in sorted(directory.glob("*.bin")) if f.name not in not_weights]


def weights_digest(directory: str | Path) -> str:
    """A checkpoint's weight hash: the sha256 of its one weight file (what the hub shows as the file's SHA256),
    or for a sharded checkpoint the sha256 of the lines ``<file name> <sha256>`` of its shards in name order."""
    directory = Path(directory)
    files = weight_files(directory)
    if not files:
        raise TrustTraceError(f"{directory}: no weight files (*.safetensors or *.bin)")
    if len(files) == 1:
        return weight_file_sha256(files[0])
    return hashlib.sha256("".join(f"{f.name} {weight_file_sha256(f)}\n" for f in files).encode()).hexdigest()


def _where(model_name: str, location: str, revision: str | None) -> str:
    where = f"model {model_name!r} ({location})" if model_name and model_name != location else f"model {location!r}"
    return where + (f" revision {revision!r}" if revision else "")


def cached_snapshot(repo_id: str, revision: str) -> Path | None:
    """The cached snapshot directory of ``repo_id`` at ``revision`` if it holds a config.json and weights, else
    None. Reads the cache only (HF_HOME / HF_HUB_CACHE), never the network."""
    from huggingface_hub import try_to_load_from_cache

    try:
        config_file = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    except (ValueError, OSError):
        return None
    if not isinstance(config_file, str):
        return None
    directory = Path(config_file).parent
    return directory if weight_files(directory) else None


# Causal-LM classes of the usual checkpoint suites (and of the pre-trained default): recognised without importing
# transformers, which costs a resolve_checkpoint job ~2 s; any other class is looked up in transformers' mapping.
KNOWN_CAUSAL_LM_CLASSES = frozenset(
    {"LlamaForCausalLM", "GPTNeoXForCausalLM", "OlmoForCausalLM", "Olmo2ForCausalLM", "GPT2LMHeadModel"}
)


def check_causal_lm(config: dict, where: str) -> None:
    """Refuse, in one line, a checkpoint whose config.json is not a causal language model (e.g. a BERT encoder):
    TrustTrace reads a decoder's hidden states at the last token and scores continuations.

    The config's ``architectures`` must name a class AutoModelForCausalLM maps to (or its ``auto_map`` must name
    AutoModelForCausalLM, for remote code); a config without ``architectures`` must have a causal-LM model_type.
    """
    architectures = config.get("architectures") or []
    if "AutoModelForCausalLM" in (config.get("auto_map") or {}):
        return
    if architectures and set(architectures) <= KNOWN_CAUSAL_LM_CLASSES:
        return
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    causal_classes = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    if architectures:
        if any(name in causal_classes for name in architectures):
            return
        what = f"{', '.join(architectures)} (model_type {config.get('model_type')!r})"
    elif config.get("model_type") in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return
    else:
        what = f"model_type {config.get('model_type')!r}"
    raise TrustTraceError(
        f"{where}: config.json describes {what}, not a causal language model (AutoModelForCausalLM); TrustTrace "
        "needs a decoder (e.g. Llama, GPT-NeoX/Pythia, OLMo, GPT-2)"
    )


def resolve_checkpoint_files(location: str, revision: str | None, *, model_name: str, allow_pickle_weights: bool):
    """Directory holding a checkpoint's files, and its resolved commit (hf) or None, without loading weights.

    For the hub this is ``snapshot_download`` (which honours HF_HOME, HF_HUB_CACHE and HF_HUB_OFFLINE): a branch
    or tag resolves to its commit, offline through the cache's ``refs/``. Only the files loading needs are fetched:
    configs, tokenizer files, custom code and the safetensors weights; .bin (pickle) weights only where the
    revision has no safetensors and the config allows pickles (so AmberChat's 27 GB pytorch_model.bin next to its
    safetensors is never fetched). A revision that is neither cached nor reachable raises one TrustTraceError
    naming the model and revision.
    """
    if revision is None:
        directory = Path(location)
        if not (directory / "config.json").is_file():
            raise TrustTraceError(f"model {model_name!r}: checkpoint directory {location} has no config.json")
        check_causal_lm(_read_config(directory), f"model {model_name!r}: checkpoint directory {location}")
        if not weight_files(directory):
            raise TrustTraceError(
                f"model {model_name!r}: checkpoint directory {location} has no weight files (*.safetensors or *.bin)"
            )
        if not allow_pickle_weights and not any(f.suffix == ".safetensors" for f in weight_files(directory)):
            raise TrustTraceError(
                f"model {model_name!r}: checkpoint directory {location} has no safetensors weights, only pickle "
                "(.bin) weights: set allow_pickle_weights: true for this model if you trust its publisher"
            )
        return directory, None
    where = _where(model_name, location, revision)
    directory = _snapshot(location, revision, SNAPSHOT_PATTERNS, where)
    if (directory / "config.json").is_file():
        check_causal_lm(_read_config(directory), where)
    # A cached snapshot may hold .bin files fetched by another run: only safetensors count unless pickles are allowed.
    if not any(f.suffix == ".safetensors" for f in weight_files(directory)):
        if not allow_pickle_weights:
            raise TrustTraceError(
                f"{where}: no safetensors weights in this revision; it may hold only pickle (.bin) weights: set "
                "allow_pickle_weights: true for this model if you trust its publisher"
            )
        directory = _snapshot(location, revision, SNAPSHOT_PATTERNS + ["*.bin"], where)
        if not weight_files(directory):
            raise TrustTraceError(f"{where}: no weight files (*.safetensors or *.bin) in this revision")
    return directory, directory.name


def _read_config(directory: Path) -> dict:
    try:
        return json.loads((directory / "config.json").read_text())
    except ValueError as error:
        raise TrustTraceError(f"{directory}/config.json: not valid JSON ({error})") from None


def _snapshot(repo_id: str, revision: str, patterns: list[str], where: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RevisionNotFoundError

    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns))
    except (LocalEntryNotFoundError, RevisionNotFoundError, HfHubHTTPError, OSError, ValueError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise TrustTraceError(
            f"{where}: not in the HF cache (HF_HOME={os.environ.get('HF_HOME', '~/.cache/huggingface')}) and not "
            f"reachable (HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '0')}): {first}"
        ) from None


def checkpoint_record(directory: Path, commit: str | None, duplicate_check: str = "tensors") -> dict:
    """What the integrity gates compare: the weight hash, each weight file's sha256 and, with
    ``duplicate_check: tensors``, the tensor digests (all weights, and each weight file's own)."""
    config = json.loads((directory / "config.json").read_text())
    files = weight_files(directory)
    record = {
        "directory": str(directory),
        "commit": commit,
        "weights_sha256": weights_digest(directory),
        "weight_files": {f.name: weight_file_sha256(f) for f in files},
        "duplicate_check": duplicate_check,
        "architectures": config.get("architectures"),
        "model_type": config.get("model_type"),
    }

    if duplicate_check == "tensors":
        per_file = {f.name: tensor_digests(f) for f in files}
        record["tensors_sha256"] = combine_tensor_digests({k: v for d in per_file.values() for k, v in d.items()})
        record["weight_file_tensors_sha256"] = {name: combine_tensor_digests(d) for name, d in per_file.items()}
    return record


# ---- duplicate weights -----------------------------------------------------------------------------------------
# Public suites have shipped branches that hold another branch's weights (EleutherAI/pythia #83: step0 = step1;
# #198: step0 = step2; #205). A file hash misses identical tensors serialised differently (another tensor order,
# other metadata, another sharding) and, for a sharded checkpoint, a combined digest misses one duplicated shard:
# so the tensors are hashed one by one (name, dtype, shape, bytes), and each weight file is compared on its own.

DUPLICATE_CHECKS = ("files", "tensors")
# torch dtypes under the names safetensors uses, so that a .bin and a .safetensors of the same tensors agree.
_SAFETENSORS_DTYPES = {
    "float64": "F64",
    "float32": "F32",
    "float16": "F16",
    "bfloat16": "BF16",
    "int64": "I64",
    "int32": "I32",
    "int16": "I16",
    "int8": "I8",
    "uint8": "U8",
    "bool": "BOOL",
    "float8_e4m3fn": "F8_E4M3",
    "float8_e5m2": "F8_E5M2",
}


def _tensor_digest(name: str, dtype: str, shape: list[int], data) -> str:
    digest = hashlib.sha256(f"{name}\0{dtype}\0{list(shape)}\0".encode())
    digest.update(data)
    return digest.hexdigest()


def tensor_digests(path: str | Path) -> dict[str, str]:
    """sha256 of each tensor of a weight file, over its name, dtype, shape and bytes (not the file's layout).

    A safetensors file is read through its header and a memory map, without torch; a .bin (pickle) file, only
    ever reached with ``allow_pickle_weights``, through torch with ``weights_only=True``.
    """
    import mmap
    import struct

    path = Path(path)
    if path.suffix != ".safetensors":
        import torch

        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return {
            name: _tensor_digest(
                name,
                _SAFETENSORS_DTYPES.get(str(t.dtype).removeprefix("torch."), str(t.dtype)),
                list(t.shape),
                t.detach().reshape(-1).contiguous().view(torch.uint8).numpy().data,
            )
            for name, t in state.items()
            if isinstance(t, torch.Tensor)
        }
    with open(path, "rb") as handle:
        try:
            (header_size,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(header_size))
        except (struct.error, ValueError) as error:
            raise TrustTraceError(f"{path}: not a readable safetensors file ({error})") from None
        header.pop("__metadata__", None)
        size = path.stat().st_size
        if not header:
            return {}
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped, memoryview(mapped) as view:
            digests = {}
            for name, info in header.items():
                begin, end = (8 + header_size + offset for offset in info["data_offsets"])
                if end > size:
                    raise TrustTraceError(f"{path}: tensor {name!r} runs past the end of the file (truncated?)")
                with view[begin:end] as data:
                    digests[name] = _tensor_digest(name, info["dtype"], info["shape"], data)
            return digests


def combine_tensor_digests(digests: dict[str, str]) -> str:
    """One digest over tensor digests, in name order: the same tensors give the same value however sharded."""
    return hashlib.sha256("".join(f"{name} {digests[name]}\n" for name in sorted(digests)).encode()).hexdigest()


def shared_weights(earlier: dict, later: dict) -> str | None:
    """What two checkpoint records (resolve_checkpoint's) share, in words, or None.

    Compared with the stricter of the two records' checks: ``tensors`` when both carry tensor digests (all weights,
    then each weight file's tensors against every weight file of the other), else ``files`` (the weight hash, then
    each file's sha256). A single weight file in common is reported, since no weight file of a model in training
    stays the same from one checkpoint to the next.
    """
    if "tensors_sha256" in earlier and "tensors_sha256" in later:
        whole, parts = "tensors_sha256", "weight_file_tensors_sha256"
        what = "identical tensors"
    else:
        whole, parts = "weights_sha256", "weight_files"
        what = "identical weight files"
    if earlier[whole] == later[whole]:
        return f"{what} (all weights)"
    later_parts = {digest: name for name, digest in later.get(parts, {}).items()}
    common = [
        (name, later_parts[digest]) for name, digest in sorted(earlier.get(parts, {}).items()) if digest in later_parts
    ]
    if common:
        listed = ", ".join(a if a == b else f"{a} = {b}" for a, b in common)
        return f"{what} in {listed}"
    return None


def duplicate_findings(records: list[dict]) -> list[dict]:
    """Every pair of records (config order) sharing weights: ``{"checkpoints": [earlier, later], "shared": ...}``."""
    findings = []
    for index, later in enumerate(records):
        for earlier in records[:index]:
            shared = shared_weights(earlier, later)
            if shared is not None:
                findings.append({"checkpoints": [earlier["checkpoint"], later["checkpoint"]], "shared": shared})
    return findings


def input_device(model):
    """Where token ids must go: the input embedding's device (with a ``device_map`` the first parameter can sit
    elsewhere, e.g. a tied output head on the last device)."""
    return model.get_input_embeddings().weight.device


def block_parameter(block):
    """A parameter of one transformer block: its device and dtype are the block's own (``device_map`` aware)."""
    return next(block.parameters())


def resolve_record(
    model: str,
    checkpoint: str,
    spec: dict,
    *,
    pretrain_dir: str | None = None,
    layer_settings: dict | None = None,
) -> dict:
    """The record ``resolve_checkpoint`` writes for one checkpoint: where it loads from (hub revision -> commit,
    or a directory), its weight hashes (``spec["duplicate_check"]``), layer count and architecture.

    ``spec``: the model's settings with this checkpoint's entry as its only ``checkpoints`` item. ``layer_settings``
    (``layers``, ``mi.input_layer``, ``steering.layers`` of the config) are checked against the layer count.
    Every failure is one TrustTraceError before any compute.
    """
    from trusttrace.config import check_layer_ranges, layer_count

    location, revision = checkpoint_location(spec, checkpoint, pretrain_dir=pretrain_dir)
    directory, commit = resolve_checkpoint_files(
        location, revision, model_name=model, allow_pickle_weights=spec["allow_pickle_weights"]
    )
    num_layers = layer_count(Path(directory) / "config.json")
    if num_layers is None:
        raise TrustTraceError(f"{directory}/config.json: no num_hidden_layers; cannot tell the layer count")
    if layer_settings is not None:
        check_layer_ranges(layer_settings, f"model {model!r} checkpoint {checkpoint!r}", num_layers)
    return {
        "model": model,
        "checkpoint": checkpoint,
        "source": spec["source"],
        "load_from": location,
        "revision": commit or revision,
        "requested_revision": revision,
        "num_layers": num_layers,
        **checkpoint_record(directory, commit, spec.get("duplicate_check", "tensors")),
    }


def integrity_record(model: str, records: list[dict], on_duplicate: str, checkpoint: str | None = None) -> dict:
    """Compare checkpoint records for identical weights (``duplicate_findings``).

    With ``checkpoint`` (the gate of one checkpoint, ``verify_checkpoint``): only the pairs in which it is the later
    one; otherwise (the model's summary, ``_integrity.json``) every pair. A duplicate raises one TrustTraceError
    when ``on_duplicate`` is ``error`` and is logged as a warning when it is ``warn``. Returns the JSON to write.
    """
    import logging

    findings = duplicate_findings(records)
    if checkpoint is not None:
        findings = [f for f in findings if f["checkpoints"][1] == checkpoint]
    if findings:
        listed = "; ".join(f"{a} = {b}: {f['shared']}" for f in findings for a, b in [f["checkpoints"]])
        message = (
            f"model {model!r}: checkpoints with identical weights: {listed} (a suite's branch may silently hold "
            "other weights; see EleutherAI/pythia issues #83, #198, #205)"
        )
        if on_duplicate == "error":
            raise TrustTraceError(message + "; set duplicate_weights: warn to go on")
        logging.getLogger(__name__).warning(message)
    checks = sorted({record.get("duplicate_check", "files") for record in records})
    if checkpoint is not None:
        return {
            "model": model,
            "checkpoint": checkpoint,
            "compared_with": [record["checkpoint"] for record in records if record["checkpoint"] != checkpoint],
            "duplicate_check": checks,
            "duplicates": findings,
        }
    return {
        "model": model,
        "checkpoints": len(records),
        "duplicate_check": checks,
        "duplicates": [f["checkpoints"] for f in findings],
        "findings": findings,
    }
