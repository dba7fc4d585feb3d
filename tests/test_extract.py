"""Extraction: the last real token under padding, batched = one-at-a-time, shards = the model's own states."""

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from trusttrace.errors import TrustTraceError
from trusttrace.extract import extract_hidden_states, length_sorted_batches, select_tokens
from trusttrace.layout import layer_file
from trusttrace.models import decoder_blocks
from trusttrace.shards import read_shard, train_test, write_manifest, write_shard

STATEMENTS = [
    "The capital of France is Paris.",
    "Two plus two is five.",
    "Hi.",
    "A much longer statement about the weather in the mountains on a cold day.",
    "Water boils at one hundred degrees.",
]


def test_select_last_real_token_not_padding():
    hidden = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    assert torch.equal(select_tokens(hidden, mask, "last"), torch.stack([hidden[0, 1], hidden[1, 3]]))
    assert torch.allclose(select_tokens(hidden, mask, "mean"), torch.stack([hidden[0, :2].mean(0), hidden[1].mean(0)]))
    with pytest.raises(TrustTraceError, match="not 'last' or 'mean'"):
        select_tokens(hidden, mask, "first")


def test_length_sorted_batches_cover_every_row_once():
    batches = length_sorted_batches(np.array([3, 9, 1, 7, 5]), 2)
    assert [b.tolist() for b in batches] == [[1, 3], [4, 0], [2]]


def single_statement_states(model, tokenizer, statement):
    """Reference: the model's own hidden states for one unpadded statement (last block's raw output by hook)."""
    ids = tokenizer(statement, add_special_tokens=False, return_tensors="pt")
    captured = {}
    handle = decoder_blocks(model)[-1].register_forward_hook(lambda m, a, o: captured.setdefault("h", o))
    with torch.no_grad():
        states = model(**ids, output_hidden_states=True).hidden_states
    handle.remove()
    raw = list(states[:-1]) + [captured["h"]]
    return [s[0, -1].numpy() for s in raw], states


def test_batched_equals_one_at_a_time_and_the_models_states(tiny_model):
    model, tokenizer = tiny_model
    layers = [0, 1, 2]
    batched = extract_hidden_states(model, tokenizer, STATEMENTS, layers, batch_size=3, progress=False)
    for row, statement in enumerate(STATEMENTS):
        reference, hf_states = single_statement_states(model, tokenizer, statement)
        for layer in layers:
            np.testing.assert_allclose(batched[layer][row], reference[layer], atol=1e-4)
        # hidden_states[l] for l < L is block l's raw output; the last entry has the final norm applied,
        # which is why the shard stores the hooked raw output instead.
        assert not np.allclose(hf_states[-1][0, -1].numpy(), reference[-1], atol=1e-3)
    # A naive [:, -1] under right padding picks pad positions for the shorter rows.
    padded = tokenizer(STATEMENTS, add_special_tokens=False, padding=True, return_tensors="pt")
    with torch.no_grad():
        naive = model(**padded, output_hidden_states=True).hidden_states[1][:, -1].numpy()
    assert np.abs(naive[2] - batched[1][2]).max() > 1e-2


def test_out_of_range_layer(tiny_model):
    with pytest.raises(TrustTraceError, match=r"layers \[3\] out of range: this model has hidden states 0\.\.2"):
        extract_hidden_states(*tiny_model, STATEMENTS, [0, 3], progress=False)


def write_layer(directory, activations, labels, splits):
    digest = write_shard(
        directory / layer_file(1, "parquet"), np.arange(len(labels)), labels, splits, activations, {"layer": 1}
    )
    write_manifest(directory, {1: digest}, {"model": "m"})


def test_shard_round_trip_and_schema(tmp_path, tiny_model):
    model, tokenizer = tiny_model
    states = extract_hidden_states(model, tokenizer, STATEMENTS, [1], progress=False)[1]
    labels, splits = np.array([1, 0, 1, 0, 1]), np.array(["train", "train", "test", "train", "test"])
    write_layer(tmp_path, states, labels, splits)
    schema = pq.read_schema(tmp_path / layer_file(1, "parquet"))
    assert str(schema.field("activation").type) == "fixed_size_list<element: float>[32]"
    assert str(schema.field("row_id").type) == "int64" and str(schema.field("label").type) == "int8"
    metadata = pq.ParquetFile(tmp_path / layer_file(1, "parquet")).metadata
    encodings = metadata.row_group(0).column(3).encodings
    assert not any("DICTIONARY" in e for e in encodings)
    shard = read_shard(tmp_path, 1)
    np.testing.assert_array_equal(shard["activation"], states)
    X_train, y_train, X_test, y_test = train_test(shard)
    assert X_train.shape == (3, 32) and y_test.tolist() == [1, 1]


def test_corrupt_or_truncated_shard_is_named(tmp_path):
    activations = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    write_layer(tmp_path, activations, np.arange(50) % 2, np.array(["train"] * 50))
    path = tmp_path / layer_file(1, "parquet")
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(TrustTraceError, match=r"layer=1\.parquet: corrupt shard .*rebuild it: snakemake --forcerun"):
        read_shard(tmp_path, 1)
    path.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(TrustTraceError, match=r"corrupt shard"):
        read_shard(tmp_path, 1)
    # Without the manifest check, Parquet's own page checksums / footer still refuse the file.
    with pytest.raises(TrustTraceError, match=r"unreadable shard"):
        read_shard(tmp_path, 1, verify=False)


def test_nan_activations_are_refused(tmp_path):
    activations = np.ones((10, 4), dtype=np.float32)
    activations[3, 1] = np.nan
    write_layer(tmp_path, activations, np.arange(10) % 2, np.array(["train"] * 10))
    with pytest.raises(TrustTraceError, match=r"1 rows hold NaN/inf activations"):
        read_shard(tmp_path, 1)


# ---- the paper's tokenisation: special tokens and truncation ---------------------------------------------------


@pytest.fixture(scope="module")
def bos_tokenizer(tiny_model):
    """The tiny tokenizer made Llama-style: a TemplateProcessing post-processor prepends BOS, as Llama's does."""
    import copy

    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    _, tokenizer = tiny_model
    backend = copy.deepcopy(tokenizer.backend_tokenizer)
    bos = tokenizer.bos_token
    backend.post_processor = TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tokenizer.bos_token_id)]
    )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=bos, eos_token=tokenizer.eos_token, pad_token=tokenizer.pad_token
    )
    wrapped.padding_side = "right"
    return wrapped


def own_states(model, ids: list[int]) -> list[np.ndarray]:
    """The model's own hidden states at the last position of one unpadded sequence (last block: raw, by hook)."""
    captured = {}
    handle = decoder_blocks(model)[-1].register_forward_hook(lambda m, a, o: captured.setdefault("h", o))
    with torch.no_grad():
        states = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
    handle.remove()
    return [s[0, -1].numpy() for s in list(states[:-1]) + [captured["h"]]]


def test_special_tokens_auto_prepends_bos_and_none_does_not(tiny_model, bos_tokenizer):
    model, _ = tiny_model
    plain = bos_tokenizer(STATEMENTS, add_special_tokens=False)["input_ids"]
    assert bos_tokenizer(STATEMENTS[0])["input_ids"] == [bos_tokenizer.bos_token_id] + plain[0]
    layers = [0, 1, 2]
    auto = extract_hidden_states(model, bos_tokenizer, STATEMENTS, layers, batch_size=2, progress=False)
    none = extract_hidden_states(
        model, bos_tokenizer, STATEMENTS, layers, batch_size=2, special_tokens="none", progress=False
    )
    for row, ids in enumerate(plain):
        with_bos, without = own_states(model, [bos_tokenizer.bos_token_id] + ids), own_states(model, ids)
        for layer in layers:
            np.testing.assert_allclose(auto[layer][row], with_bos[layer], atol=1e-4)
            np.testing.assert_allclose(none[layer][row], without[layer], atol=1e-4)
    # BOS changes every block's output (attention sees one more position); embeddings of the last token do not.
    np.testing.assert_allclose(auto[0], none[0], atol=1e-6)
    assert np.abs(auto[2] - none[2]).max() > 1e-2
    # The tiny tokenizer itself adds nothing (GPT-NeoX-like): auto and none agree there.
    tiny = extract_hidden_states(*tiny_model, STATEMENTS, [2], progress=False)[2]
    np.testing.assert_allclose(tiny, none[2], atol=1e-5)


def test_truncated_statements_are_cut_counted_and_checked(tiny_model, bos_tokenizer, caplog):
    from trusttrace.extract import check_truncation, extract_token_ids
    from trusttrace.tokens import encode_statements

    model, _ = tiny_model
    lengths = [len(ids) + 1 for ids in bos_tokenizer(STATEMENTS, add_special_tokens=False)["input_ids"]]  # + BOS
    max_length = sorted(lengths)[2]  # the two longest statements are cut
    ids, truncated = encode_statements(bos_tokenizer, STATEMENTS, special_tokens="auto", max_length=max_length)
    assert truncated.tolist() == [n > max_length for n in lengths] and truncated.sum() == 2
    assert all(len(row) == min(n, max_length) for row, n in zip(ids, lengths, strict=False))
    states = extract_token_ids(model, bos_tokenizer, ids, [1], progress=False)[1]
    for row in np.flatnonzero(truncated):  # a cut row = BOS + its first max_length - 1 tokens
        full = bos_tokenizer(STATEMENTS[row])["input_ids"]
        np.testing.assert_allclose(states[row], own_states(model, full[:max_length])[1], atol=1e-4)
    with caplog.at_level("WARNING"):
        assert check_truncation(truncated, max_length, 0.5, "m/c/d") == 2
    assert "m/c/d: 2 of 5 statements (40.0%) are longer than extraction.max_length" in caplog.text
    with pytest.raises(
        TrustTraceError,
        match=r"^m/c/d: 2 of 5 statements \(40\.0%\) .* more than "
        r"extraction\.max_truncated_fraction 0\.05; raise max_length",
    ):
        check_truncation(truncated, max_length, 0.05, "m/c/d")
    assert check_truncation(np.zeros(5, dtype=bool), max_length, 0.0) == 0


@pytest.mark.workflow
def test_extraction_manifest_counts_truncation_and_fails_above_the_limit(tmp_path):
    import json

    import pandas as pd
    import yaml
    from helpers import REPO, run_workflow
    from trusttrace.models import load_model_and_tokenizer
    from trusttrace.tokens import encode_statements

    tiny = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    tiny["models"]["tiny"]["checkpoints"] = tiny["models"]["tiny"]["checkpoints"][:1]
    tiny["extraction"] = {"max_length": 8, "max_truncated_fraction": 1.0}
    target = "results/activations/tiny/step0/reliability"
    run_workflow(tmp_path, tiny, "--cores", "2", target)
    manifest = json.loads((tmp_path / target / "manifest.json").read_text())
    _, tokenizer = load_model_and_tokenizer(str(tmp_path / "results/pretrain/tiny/checkpoints/step0"))
    data = pd.read_parquet(tmp_path / "results/data/reliability.parquet")
    _, truncated = encode_statements(tokenizer, data["statement"].tolist(), max_length=8)
    assert manifest["n_truncated"] == int(truncated.sum()) > 0.05 * len(data)
    assert manifest["special_tokens"] == "auto" and manifest["max_length"] == 8
    shard = read_shard(tmp_path / target, 1)
    assert (shard["split"] == data["split"].to_numpy()).all()  # the data's splits, validation included
    assert set(shard["split"]) == {"train", "validation", "test"}
    log = (tmp_path / "logs/extract_activations/tiny/step0/reliability.log").read_text()
    assert f"{manifest['n_truncated']} of {len(data)} statements" in log and "WARNING" in log
    tiny["extraction"]["max_truncated_fraction"] = 0.05
    result = run_workflow(tmp_path, tiny, "--cores", "2", target, "--forcerun", "extract_activations", check=False)
    assert result.returncode != 0
    log = (tmp_path / "logs/extract_activations/tiny/step0/reliability.log").read_text()
    assert "more than extraction.max_truncated_fraction 0.05; raise max_length" in log
