"""The offline default model: deterministic tokenizer and init, and resuming equals training straight through."""

import hashlib

import numpy as np
import pytest
from helpers import TINY_SETTINGS
from trusttrace.pretrain import (
    batch_offsets,
    build_corpus,
    encode_corpus,
    learning_rate,
    train_segment,
    train_tokenizer,
)


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_corpus_is_deterministic_and_has_the_extra_text():
    corpus = build_corpus(["A statement only this test adds."])
    assert corpus == build_corpus(["A statement only this test adds."])
    assert len(corpus) > 500_000 and "A statement only this test adds." in corpus


def test_tokenizer_training_is_deterministic(tmp_path, tiny_corpus, tiny_tokenizer_dir):
    train_tokenizer(tiny_corpus, TINY_SETTINGS["vocab_size"], tmp_path)
    assert digest(tmp_path / "tokenizer.json") == digest(tiny_tokenizer_dir / "tokenizer.json")
    ids = encode_corpus("The capital of France is Paris.", tmp_path)
    assert ids.dtype == np.int32 and len(ids) >= 3


def test_batches_and_schedule_depend_on_step_only():
    assert (batch_offsets(0, 7, 1000, 32, 4) == batch_offsets(0, 7, 1000, 32, 4)).all()
    assert (batch_offsets(0, 7, 1000, 32, 4) != batch_offsets(0, 8, 1000, 32, 4)).any()
    assert learning_rate(0, 1.0, 10) == pytest.approx(0.1)
    assert learning_rate(9, 1.0, 10) == pytest.approx(1.0)
    assert learning_rate(39, 1.0, 10) == pytest.approx(0.5)


def test_resume_equals_uninterrupted(tmp_path, tiny_corpus, tiny_tokenizer_dir):
    stream = encode_corpus(tiny_corpus, tiny_tokenizer_dir)

    def train(target, output, previous):
        return train_segment(
            settings=TINY_SETTINGS,
            tokenizer_dir=tiny_tokenizer_dir,
            token_stream=stream,
            target_step=target,
            output_dir=tmp_path / output,
            previous_dir=previous,
            threads=1,
            progress=False,
        )

    train(0, "init", None)
    again = train(0, "init-again", None)
    assert again == [] and digest(tmp_path / "init/model.safetensors") == digest(
        tmp_path / "init-again/model.safetensors"
    )
    straight = train(6, "straight", tmp_path / "init")
    train(2, "part", tmp_path / "init")
    resumed = train(6, "resumed", tmp_path / "part")
    for name in ("model.safetensors", "optimizer.safetensors"):
        assert digest(tmp_path / "straight" / name) == digest(tmp_path / "resumed" / name)
    assert [r["loss"] for r in resumed] == [r["loss"] for r in straight[2:]]
    assert straight[-1]["loss"] < straight[0]["loss"]
    assert digest(tmp_path / "init/model.safetensors") != digest(tmp_path / "straight/model.safetensors")


def test_cannot_train_backwards(tmp_path, tiny_corpus, tiny_tokenizer_dir, tiny_checkpoint_dir):
    with pytest.raises(ValueError, match="before the previous checkpoint's step 3"):
        train_segment(
            settings=TINY_SETTINGS,
            tokenizer_dir=tiny_tokenizer_dir,
            token_stream=encode_corpus(tiny_corpus, tiny_tokenizer_dir),
            target_step=1,
            output_dir=tmp_path / "x",
            previous_dir=tiny_checkpoint_dir,
            threads=1,
            progress=False,
        )
