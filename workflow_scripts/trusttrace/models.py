"""Loading checkpoints (pre-trained here, local directories, or the Hugging Face hub by revision) safely, and
finding a model's transformer blocks without assuming an architecture.

Weights load from safetensors only unless the config allows pickles for that model; ``trust_remote_code`` is off
unless the config turns it on for that model.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from trusttrace.errors import TrustTraceError

DTYPES = ("float32", "bfloat16", "float16")


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
):
    """``AutoModelForCausalLM/AutoTokenizer.from_pretrained(location, revision=...)`` in eval mode.

    The tokenizer pads on the right with a pad token (the end-of-text token when the model has none); the
    extraction picks each row's last real token from the attention mask, so padding never leaks in. A revision
    that is neither cached nor reachable (``HF_HUB_OFFLINE=1``, no network) raises one TrustTraceError naming the
    model and revision.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    where = f"model {model_name or location!r}" + (f" revision {revision!r}" if revision else "")
    kwargs = {"revision": revision, "trust_remote_code": trust_remote_code}
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(
            location, dtype=torch_dtype(dtype), use_safetensors=None if allow_pickle_weights else True, **kwargs
        )
    except (OSError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        cache = os.environ.get("HF_HOME", "~/.cache/huggingface")
        offline = os.environ.get("HF_HUB_OFFLINE", "0")
        raise TrustTraceError(
            f"{where}: cannot load ({first}); not in the HF cache (HF_HOME={cache}) or not reachable "
            f"(HF_HUB_OFFLINE={offline}), or no safetensors weights (allow_pickle_weights is off)"
        ) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token is not None else tokenizer.unk_token
    tokenizer.padding_side = "right"
    model.to(device)
    model.eval()
    return model, tokenizer


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
            f"{type(model).__name__}: found {len(found)} ModuleLists of length {count}; cannot tell which are the blocks"
        )
    return found[0]


def weights_digest(directory: str | Path) -> str:
    """sha256 over the checkpoint's weight files (safetensors, else .bin), in name order."""
    directory = Path(directory)
    files = sorted(directory.glob("*.safetensors")) or sorted(directory.glob("*.bin"))
    files = [f for f in files if f.name != "optimizer.safetensors"]
    if not files:
        raise TrustTraceError(f"{directory}: no weight files (*.safetensors or *.bin)")
    digest = hashlib.sha256()
    for path in files:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def resolve_checkpoint_files(location: str, revision: str | None, *, model_name: str, allow_pickle_weights: bool):
    """Directory holding a checkpoint's files, and its resolved commit (hf) or None, without loading weights.

    For the hub this is ``snapshot_download`` (which honours HF_HOME and HF_HUB_OFFLINE); offline with nothing
    cached it raises one TrustTraceError naming the model and revision.
    """
    if revision is None:
        if not (Path(location) / "config.json").is_file():
            raise TrustTraceError(f"model {model_name!r}: checkpoint directory {location} has no config.json")
        return Path(location), None
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RevisionNotFoundError

    patterns = ["*.json", "*.safetensors", "*.txt", "*.model", "*.py"] + (["*.bin"] if allow_pickle_weights else [])
    try:
        directory = Path(snapshot_download(location, revision=revision, allow_patterns=patterns))
    except (LocalEntryNotFoundError, RevisionNotFoundError, HfHubHTTPError, OSError, ValueError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise TrustTraceError(
            f"model {model_name!r} ({location}) revision {revision!r}: not in the HF cache "
            f"(HF_HOME={os.environ.get('HF_HOME', '~/.cache/huggingface')}) and not reachable "
            f"(HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '0')}): {first}"
        ) from None
    return directory, directory.name


def checkpoint_record(directory: Path, commit: str | None) -> dict:
    config = json.loads((directory / "config.json").read_text())
    return {
        "directory": str(directory),
        "commit": commit,
        "weights_sha256": weights_digest(directory),
        "architectures": config.get("architectures"),
        "model_type": config.get("model_type"),
    }
