"""The offline default model: a corpus every Python install has, a byte-level BPE tokenizer, a tiny Llama, and
training in resumable segments so that each checkpoint is its own workflow output.

Resuming is exact by construction: the batch at step s is drawn from a generator seeded by (seed, s), the
learning-rate schedule depends on s alone (never on the final step), the model has no dropout, and the AdamW
state is saved beside the weights (safetensors, no pickles). Training 0->a->b therefore gives the same bytes as
training 0->b, on the same machine and thread count.
"""

from __future__ import annotations

import ast
import json
import logging
import math
import sys
import sysconfig
from pathlib import Path

import numpy as np

from trusttrace.io import fault_test_hold

log = logging.getLogger(__name__)

# Standard-library modules whose docstrings join pydoc's topics in the corpus: a fixed list, so that the corpus
# does not depend on which optional modules an install happens to have.
CORPUS_MODULES = (
    "argparse",
    "ast",
    "asyncio/base_events",
    "asyncio/events",
    "asyncio/tasks",
    "base64",
    "bisect",
    "calendar",
    "collections/__init__",
    "concurrent/futures/_base",
    "configparser",
    "contextlib",
    "copy",
    "csv",
    "dataclasses",
    "datetime",
    "decimal",
    "difflib",
    "email/message",
    "enum",
    "fractions",
    "ftplib",
    "functools",
    "getopt",
    "gettext",
    "glob",
    "gzip",
    "hashlib",
    "heapq",
    "hmac",
    "html/parser",
    "http/client",
    "http/server",
    "imaplib",
    "inspect",
    "ipaddress",
    "json/__init__",
    "json/decoder",
    "logging/__init__",
    "mailbox",
    "mimetypes",
    "multiprocessing/pool",
    "numbers",
    "optparse",
    "os",
    "pathlib",
    "pickle",
    "platform",
    "pprint",
    "queue",
    "random",
    "re/__init__",
    "shlex",
    "shutil",
    "smtplib",
    "socket",
    "socketserver",
    "statistics",
    "string",
    "subprocess",
    "tarfile",
    "tempfile",
    "textwrap",
    "threading",
    "timeit",
    "tokenize",
    "traceback",
    "turtle",
    "typing",
    "unittest/case",
    "urllib/parse",
    "urllib/request",
    "uuid",
    "warnings",
    "weakref",
    "xml/dom/minidom",
    "zipfile/__init__",
    "zipfile",
)
SPECIAL_TOKENS = ("<|endoftext|>", "<|pad|>")


def _module_docstrings(source: str) -> list[str]:
    docs = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            if doc and len(doc) > 40:
                docs.append(doc)
    return docs


def build_corpus(extra_statements: list[str]) -> str:
    """Pre-training text: pydoc topics, standard-library docstrings (parsed, never imported), extra statements."""
    import pydoc_data.topics

    parts = [pydoc_data.topics.topics[key] for key in sorted(pydoc_data.topics.topics)]
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for module in CORPUS_MODULES:
        path = stdlib / f"{module}.py"
        if path.is_file():
            parts.extend(_module_docstrings(path.read_text(encoding="utf-8", errors="replace")))
    parts.extend(extra_statements)
    return "\n\n".join(part.strip() for part in parts if part.strip()) + "\n"


def train_tokenizer(corpus: str, vocab_size: int, output_dir: str | Path) -> None:
    """Byte-level BPE trained on the corpus, saved as a transformers fast tokenizer (tokenizer.json + config)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # One document per paragraph: the trainer is single-pass and deterministic for a fixed input order.
    tokenizer.train_from_iterator(corpus.split("\n\n"), trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=SPECIAL_TOKENS[0],
        bos_token=SPECIAL_TOKENS[0],
        pad_token=SPECIAL_TOKENS[1],
    )
    wrapped.save_pretrained(str(output_dir))


def encode_corpus(corpus: str, tokenizer_dir: str | Path) -> np.ndarray:
    """The corpus as one int32 token stream, documents separated by the end-of-text token."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    ids: list[int] = []
    for document in corpus.split("\n\n"):
        ids.extend(tokenizer(document, add_special_tokens=False)["input_ids"])
        ids.append(tokenizer.eos_token_id)
    return np.asarray(ids, dtype=np.int32)


def batch_offsets(seed: int, step: int, n_tokens: int, seq_len: int, batch_size: int) -> np.ndarray:
    """Start positions of the batch used at ``step``: a pure function of (seed, step), so resuming needs no state."""
    rng = np.random.default_rng([seed, step])
    return rng.integers(0, n_tokens - seq_len - 1, size=batch_size)


def learning_rate(step: int, base: float, warmup_steps: int) -> float:
    """Linear warm-up then inverse-square-root decay; independent of the final step, so segments can be added."""
    if warmup_steps == 0:
        return base / math.sqrt(max(step, 1))
    return base * min((step + 1) / warmup_steps, math.sqrt(warmup_steps / (step + 1)))


def new_model(settings: dict, vocab_size: int, pad_token_id: int, eos_token_id: int, seed: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=settings["hidden_size"],
        num_hidden_layers=settings["num_layers"],
        num_attention_heads=settings["num_heads"],
        num_key_value_heads=settings["num_heads"],
        intermediate_size=settings["intermediate_size"],
        max_position_embeddings=max(settings["seq_len"], 512),
        tie_word_embeddings=True,
        pad_token_id=pad_token_id,
        bos_token_id=eos_token_id,
        eos_token_id=eos_token_id,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def _optimizer(model, settings: dict):
    import torch

    return torch.optim.AdamW(model.parameters(), lr=settings["learning_rate"], weight_decay=settings["weight_decay"])


def _save_optimizer(optimizer, model, path: Path) -> None:
    from safetensors.torch import save_file

    names = {id(p): n for n, p in model.named_parameters()}
    tensors = {}
    for param, state in optimizer.state.items():
        for key, value in state.items():
            tensors[f"{names[id(param)]}::{key}"] = value.detach().clone().contiguous()
    save_file(tensors, str(path))


def _load_optimizer(optimizer, model, path: Path) -> None:
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    for name, param in model.named_parameters():
        state = {key.split("::", 1)[1]: value for key, value in tensors.items() if key.split("::", 1)[0] == name}
        if state:
            optimizer.state[param] = state


def train_segment(
    *,
    settings: dict,
    tokenizer_dir: str | Path,
    token_stream: np.ndarray,
    target_step: int,
    output_dir: str | Path,
    previous_dir: str | Path | None,
    threads: int,
    progress: bool = True,
) -> list[dict]:
    """Train from ``previous_dir`` (or a fresh seeded init) up to ``target_step`` and save a checkpoint.

    ``output_dir`` receives the weights (``save_pretrained``: config.json + model.safetensors), the tokenizer,
    ``optimizer.safetensors`` and ``trainer_state.json``. Returns the per-step losses of this segment.
    """
    import torch
    from tqdm import tqdm
    from transformers import AutoTokenizer, LlamaForCausalLM

    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    if previous_dir is None:
        model = new_model(settings, len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id, settings["seed"])
        start_step = 0
    else:
        previous_dir = Path(previous_dir)
        state = json.loads((previous_dir / "trainer_state.json").read_text())
        start_step = state["step"]
        model = LlamaForCausalLM.from_pretrained(str(previous_dir), use_safetensors=True, dtype=torch.float32)
    if target_step < start_step:
        raise ValueError(f"target step {target_step} is before the previous checkpoint's step {start_step}")
    model.train()
    optimizer = _optimizer(model, settings)
    if previous_dir is not None and (previous_dir / "optimizer.safetensors").is_file():
        _load_optimizer(optimizer, model, previous_dir / "optimizer.safetensors")
    tokens = torch.from_numpy(token_stream.astype(np.int64))
    seq_len, batch_size = settings["seq_len"], settings["batch_size"]
    losses = []
    bar = tqdm(
        range(start_step, target_step),
        desc=f"pretrain -> step {target_step}",
        disable=not progress,
        file=sys.stderr,
        mininterval=5,
    )
    for step in bar:
        offsets = batch_offsets(settings["seed"], step, len(tokens), seq_len, batch_size)
        batch = torch.stack([tokens[o : o + seq_len] for o in offsets])
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, settings["learning_rate"], settings["warmup_steps"])
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append({"step": step + 1, "loss": float(loss.detach()), "lr": optimizer.param_groups[0]["lr"]})
        bar.set_postfix(loss=f"{losses[-1]['loss']:.3f}")
        fault_test_hold(f"pretrain:{output_dir}:step={step + 1}")  # the fault tests' kill point; a no-op otherwise
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.save_pretrained(str(output_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(output_dir))
    _save_optimizer(optimizer, model, output_dir / "optimizer.safetensors")
    (output_dir / "trainer_state.json").write_text(
        json.dumps(
            {"step": target_step, "seed": settings["seed"], "threads": threads, "settings": settings},
            indent=2,
            sort_keys=True,
        )
    )
    if losses:
        log.info("step %d: loss %.4f", target_step, losses[-1]["loss"])
    return losses
