"""Loading a checkpoint: Amber's format (a float32 pickle, pytorch_model.bin) against its local copy (safetensors
in the compute dtype, trusttrace.local_copy). Prints seconds per step, the ratio later-copy-load / pickle-load
(target <= 0.2), and the machine's load average beside each figure (a busy machine slows everything).

    python benchmarks/bench_loading.py [--hidden 1024] [--layers 16] [--repeats 3] [--dtype float32]

A randomly initialised Llama (hidden 1024, 16 blocks, intermediate 2816, vocab 32000: ~270 M parameters, ~1.1 GB
in float32) is saved in a temp directory with a tiny word-level tokenizer (tests/hub_cache.py). Loads go through
TrustTrace's own path (``load_recorded`` on the checkpoint's record, ``allow_pickle_weights: true``), on the CPU.
Each load is timed up to every weight byte being in memory (transformers maps weight files lazily, so a load
alone can finish before the file is read): one element of every memory page of every tensor is read. The first
load of each format starts from a cold page cache for its files (posix_fadvise DONTNEED, no root needed); later
loads find the files in the page cache, as the other jobs of a checkpoint on the same node would.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow_scripts"))
sys.path.insert(0, str(REPO / "tests"))

from hub_cache import make_tokenizer  # noqa: E402
from trusttrace.local_copy import materialise_checkpoint  # noqa: E402
from trusttrace.models import load_recorded, resolve_record  # noqa: E402


def save_pickle_checkpoint(directory: Path, hidden: int, layers: int, intermediate: int, vocab: int) -> int:
    """A random Llama saved as Amber ships it: config.json + a float32 pickle pytorch_model.bin (+ a tokenizer).
    Returns the parameter count."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64),
        num_key_value_heads=max(1, hidden // 64),
        max_position_embeddings=2048,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    count = sum(p.numel() for p in model.parameters())
    config.save_pretrained(directory)
    torch.save(model.state_dict(), directory / "pytorch_model.bin")
    make_tokenizer("llama").save_pretrained(directory)
    del model
    gc.collect()
    return count


def drop_from_page_cache(directory: Path) -> None:
    """Ask the kernel to forget the cached pages of a directory's files (a cold read next time)."""
    for path in directory.iterdir():
        if path.is_file():
            with open(path, "rb") as handle:
                os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def touch_weights(model) -> float:
    """Read one element per 4 KiB page of every tensor, so that a lazily mapped file is really read."""
    import torch

    total = 0.0
    with torch.no_grad():
        for tensor in model.state_dict().values():
            flat = tensor.reshape(-1)
            total += float(flat[:: max(1, 4096 // flat.element_size())].float().sum())
    return total


def timed(call) -> tuple[float, float]:
    """(seconds, 1-minute load average when it finished) of one call; what it returns is dropped at once."""
    start = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - start
    del result
    gc.collect()
    return seconds, os.getloadavg()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--intermediate", type=int, default=None, help="default: 2.75 x hidden (2816 for 1024)")
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--repeats", type=int, default=3, help="later loads of each format")
    parser.add_argument(
        "--dtype",
        default="bfloat16",
        choices=["float32", "bfloat16", "float16"],
        help="compute dtype (Amber's: bfloat16)",
    )
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    intermediate = args.intermediate or int(round(args.hidden * 2.75 / 128) * 128)

    with tempfile.TemporaryDirectory(prefix="bench_loading_") as work:
        work = Path(work)
        source = work / "ckpt"
        source.mkdir()
        params = save_pickle_checkpoint(source, args.hidden, args.layers, intermediate, args.vocab)
        spec = {
            "source": "local",
            "checkpoints": [{"name": "ckpt", "path": str(source)}],
            "dtype": args.dtype,
            "device": "cpu",
            "trust_remote_code": False,
            "allow_pickle_weights": True,
            "duplicate_check": "files",
        }
        rows = []
        seconds, load = timed(lambda: resolve_record("bench", "ckpt", spec))
        rows.append(("record (sha256 of the pickle, once)", seconds, load))
        record = resolve_record("bench", "ckpt", spec)

        def load_pickle():
            model, _ = load_recorded(record, spec, threads=args.threads)
            return touch_weights(model)

        def load_copy():
            model, _ = load_recorded(record, spec, threads=args.threads, local_copy=copy)
            return touch_weights(model)

        drop_from_page_cache(source)
        rows.append(("pickle load, first (cold cache)", *timed(load_pickle)))
        pickle_later = [timed(load_pickle) for _ in range(args.repeats)]
        rows.append((f"pickle load, later (median of {args.repeats})", *median(pickle_later)))
        copy = work / "copy"
        rows.append(("make the local copy (once)", *timed(lambda: materialise_checkpoint(record, spec, copy))))
        drop_from_page_cache(copy)
        rows.append(("copy load, first (cold cache)", *timed(load_copy)))
        copy_later = [timed(load_copy) for _ in range(args.repeats)]
        rows.append((f"copy load, later (median of {args.repeats})", *median(copy_later)))
        sizes = {p.name: p.stat().st_size for p in [source / "pytorch_model.bin", *copy.glob("*.safetensors")]}

    print(
        f"Llama hidden {args.hidden}, {args.layers} blocks, intermediate {intermediate}, vocab {args.vocab}: "
        f"{params / 1e6:.0f} M parameters; copy dtype {args.dtype}; torch threads {args.threads}; "
        f"CPUs {os.cpu_count()}"
    )
    print("files: " + ", ".join(f"{name} {size / 1e9:.2f} GB" for name, size in sizes.items()))
    print(f"{'step':<42}{'seconds':>9}{'load avg (1 min)':>18}")
    for name, seconds, load in rows:
        print(f"{name:<42}{seconds:>9.2f}{load:>18.2f}")
    ratio = median(copy_later)[0] / median(pickle_later)[0]
    print(f"later copy load / later pickle load: {ratio:.3f} (target <= 0.2)")
    seconds = {name: value for name, value, _ in rows}
    cold = seconds["copy load, first (cold cache)"] / seconds["pickle load, first (cold cache)"]
    print(f"first copy load / first pickle load (cold cache): {cold:.3f}")


def median(timings: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(t for t, _ in timings), statistics.median(load for _, load in timings)


if __name__ == "__main__":
    main()
