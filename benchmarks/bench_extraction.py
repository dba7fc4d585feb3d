"""Extraction throughput, same model and statements in one process:
(a) one statement per forward pass (the original code's loop), (b) a bare batched forward on the same batches,
(c) TrustTrace's extraction (length-sorted batches, every layer, last-token selection) writing Parquet shards.
Prints statements/s and, as the headline, c as a fraction of b (what TrustTrace adds to the forward passes it
cannot avoid; target >= 0.85), then c against a (on a 1.6 M-parameter model on 2 cores the bare batched forward
itself is only ~5x the loop, so this ratio says more about the machine than about TrustTrace). The machine's load
average is printed beside the figures.

    python benchmarks/bench_extraction.py [--statements 400] [--batch-size 64] [--checkpoint DIR]

Without --checkpoint it builds a tiny Llama of the default config's size (hidden 128, 4 blocks) in a temp dir.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow_scripts"))

from machine import load_average  # noqa: E402
from trusttrace.demo_data import DEMO_DIMENSIONS, generate_demo_dimension  # noqa: E402
from trusttrace.extract import extract_hidden_states, length_sorted_batches  # noqa: E402
from trusttrace.layout import layer_file
from trusttrace.models import load_model_and_tokenizer  # noqa: E402
from trusttrace.shards import write_manifest, write_shard  # noqa: E402


def default_checkpoint(directory: Path, statements: list[str]) -> Path:
    from trusttrace.pretrain import build_corpus, train_segment, train_tokenizer

    settings = {
        "vocab_size": 4096,
        "hidden_size": 128,
        "num_layers": 4,
        "num_heads": 4,
        "intermediate_size": 512,
        "seq_len": 128,
        "batch_size": 16,
        "learning_rate": 0.003,
        "warmup_steps": 50,
        "weight_decay": 0.01,
        "seed": 0,
        "threads": 2,
    }
    train_tokenizer(build_corpus(statements), settings["vocab_size"], directory / "tokenizer")
    train_segment(
        settings=settings,
        tokenizer_dir=directory / "tokenizer",
        token_stream=np.zeros(1000, np.int32),
        target_step=0,
        output_dir=directory / "model",
        previous_dir=None,
        threads=2,
        progress=False,
    )
    return directory / "model"


def timed(function, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--statements", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    per_dimension = -(-args.statements // len(DEMO_DIMENSIONS) // 2) * 2
    statements = [s for name in DEMO_DIMENSIONS for s in generate_demo_dimension(name, per_dimension)["statement"]]
    statements = statements[: args.statements]
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        checkpoint = args.checkpoint or default_checkpoint(scratch, statements)
        model, tokenizer = load_model_and_tokenizer(str(checkpoint))
        layers = list(range(model.config.num_hidden_layers + 1))
        encoded = tokenizer(statements, add_special_tokens=False)["input_ids"]
        batches = length_sorted_batches(np.array([len(e) for e in encoded]), args.batch_size)

        def one_at_a_time():
            with torch.no_grad():
                for ids in encoded:
                    model(input_ids=torch.tensor([ids]), output_hidden_states=True)

        def bare_batched():
            with torch.no_grad():
                for rows in batches:
                    batch = tokenizer.pad({"input_ids": [encoded[i] for i in rows]}, return_tensors="pt")
                    model(**batch, output_hidden_states=True)

        def trusttrace_extraction():
            states = extract_hidden_states(
                model, tokenizer, statements, layers, batch_size=args.batch_size, progress=False
            )
            out = scratch / "shards"
            out.mkdir(exist_ok=True)
            labels, split = np.arange(len(statements)) % 2, np.array(["train"] * len(statements))
            digests = {
                l: write_shard(out / layer_file(l, "parquet"), np.arange(len(statements)), labels, split, states[l], {})
                for l in layers
            }
            write_manifest(out, digests, {})

        trusttrace_extraction()  # warm-up
        times = {"a": timed(one_at_a_time, 1), "b": timed(bare_batched), "c": timed(trusttrace_extraction)}
    n = len(statements)
    print(f"{n} statements, {len(layers)} layers, batch size {args.batch_size}, {args.threads} threads")
    print(load_average())
    for key, label in (
        ("a", "one statement per forward"),
        ("b", "bare batched forward"),
        ("c", "TrustTrace extraction + shards"),
    ):
        print(f"  ({key}) {label:32s} {times[key]:7.3f} s  {n / times[key]:8.1f} statements/s")
    print(f"  c vs b: {times['b'] / times['c']:.2f} of the bare batched throughput (target >= 0.85)")
    print(f"  c vs a: {times['a'] / times['c']:.1f}x the one-statement loop (b vs a: {times['a'] / times['b']:.1f}x)")


if __name__ == "__main__":
    main()
