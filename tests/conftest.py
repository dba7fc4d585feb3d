"""Shared fixtures: a tiny tokenizer + Llama made here (nothing is downloaded), and the repo paths."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"
TINY_SETTINGS = {
    "vocab_size": 400, "hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64, "seq_len": 32,
    "batch_size": 4, "learning_rate": 0.003, "warmup_steps": 2, "weight_decay": 0.01, "seed": 0, "threads": 1,
}


@pytest.fixture(scope="session")
def tiny_corpus() -> str:
    from trusttrace.demo_data import demo_statements_for_corpus

    return "\n\n".join(demo_statements_for_corpus(seed=0)[:800])


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory, tiny_corpus) -> Path:
    from trusttrace.pretrain import train_tokenizer

    directory = tmp_path_factory.mktemp("tokenizer")
    train_tokenizer(tiny_corpus, TINY_SETTINGS["vocab_size"], directory)
    return directory


@pytest.fixture(scope="session")
def tiny_checkpoint_dir(tmp_path_factory, tiny_tokenizer_dir, tiny_corpus) -> Path:
    """A tiny Llama trained for 3 steps, saved with save_pretrained (safetensors) + tokenizer."""
    from trusttrace.pretrain import encode_corpus, train_segment

    directory = tmp_path_factory.mktemp("checkpoint")
    train_segment(
        settings=TINY_SETTINGS, tokenizer_dir=tiny_tokenizer_dir, token_stream=encode_corpus(tiny_corpus, tiny_tokenizer_dir),
        target_step=3, output_dir=directory, previous_dir=None, threads=1, progress=False,
    )
    return directory


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoint_dir):
    from trusttrace.models import load_model_and_tokenizer

    return load_model_and_tokenizer(str(tiny_checkpoint_dir))
