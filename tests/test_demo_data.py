"""Tests for trusttrace.demo_data: shape, balance, uniqueness, determinism and the error messages."""

import re

import numpy as np
import pytest

from trusttrace.demo_data import (
    DEMO_DIMENSIONS,
    TRUSTWORTHY_LABEL,
    demo_statements_for_corpus,
    generate_demo_dimension,
    max_demo_size,
)
from trusttrace.errors import TrustTraceError

N = 400


@pytest.fixture(params=DEMO_DIMENSIONS)
def name(request):
    return request.param


def test_dimension_names_and_trustworthy_sides():
    assert DEMO_DIMENSIONS == ("reliability", "privacy", "toxicity", "fairness", "robustness")
    assert TRUSTWORTHY_LABEL == {"reliability": 1, "privacy": 0, "toxicity": 0, "fairness": 0, "robustness": 1}


def test_shape_columns_and_labels(name):
    frame = generate_demo_dimension(name, n=N, seed=0)
    assert list(frame.columns) == ["statement", "label"]
    assert len(frame) == N
    assert set(frame["label"].tolist()) == {0, 1}
    assert frame["label"].dtype == np.int64
    assert all(isinstance(statement, str) for statement in frame["statement"])


def test_balanced(name):
    counts = generate_demo_dimension(name, n=N, seed=3)["label"].value_counts()
    assert counts[0] == counts[1] == N // 2


def test_unique_non_empty_and_end_with_period(name):
    statements = generate_demo_dimension(name, n=N, seed=1)["statement"].tolist()
    assert len(set(statements)) == N
    assert all(statement.strip() and statement == statement.strip() for statement in statements)
    assert all(statement.endswith(".") and not statement.endswith("..") for statement in statements)
    assert all(statement[0].isupper() or statement[0].isdigit() for statement in statements
               if name != "robustness")  # robustness noise may flip the first letter's case on purpose


def test_shuffled_not_grouped_by_label(name):
    labels = generate_demo_dimension(name, n=N, seed=0)["label"].to_numpy()
    # A sorted frame would switch label once; a shuffled one of 400 rows switches far more often.
    assert np.count_nonzero(np.diff(labels)) > N // 4


def test_deterministic(name):
    first = generate_demo_dimension(name, n=N, seed=7)
    second = generate_demo_dimension(name, n=N, seed=7)
    assert first.equals(second)


def test_seed_changes_order_and_sample(name):
    seed_0 = generate_demo_dimension(name, n=N, seed=0)
    seed_1 = generate_demo_dimension(name, n=N, seed=1)
    assert seed_0["statement"].tolist() != seed_1["statement"].tolist()
    assert set(seed_0["statement"]) != set(seed_1["statement"])


def test_word_counts_of_the_classes_within_20_percent(name):
    frame = generate_demo_dimension(name, n=max_demo_size(name), seed=0)
    words = frame["statement"].str.split().str.len()
    mean_0, mean_1 = words[frame["label"] == 0].mean(), words[frame["label"] == 1].mean()
    assert abs(mean_0 - mean_1) / min(mean_0, mean_1) <= 0.20


def test_max_size_reachable_and_at_least_600(name):
    largest = max_demo_size(name)
    assert largest >= 600 and largest % 2 == 0
    frame = generate_demo_dimension(name, n=largest, seed=0)
    assert frame["statement"].is_unique
    # Both pools are disjoint: no statement carries both labels.
    assert frame.groupby("statement")["label"].nunique().max() == 1


def test_too_large_n_names_the_maximum(name):
    largest = max_demo_size(name)
    with pytest.raises(TrustTraceError, match=rf"{name}.*at most {largest} statements.*n={largest + 2}"):
        generate_demo_dimension(name, n=largest + 2)


@pytest.mark.parametrize("bad_n", [7, 401, 0, -4, 2.0, True])
def test_odd_or_non_positive_n_rejected(bad_n):
    with pytest.raises(TrustTraceError, match="n must be a positive even integer"):
        generate_demo_dimension("privacy", n=bad_n)


def test_negative_seed_rejected():
    with pytest.raises(TrustTraceError, match="seed must be a non-negative integer"):
        generate_demo_dimension("toxicity", seed=-1)


def test_unknown_name_lists_valid_names():
    with pytest.raises(TrustTraceError, match=re.escape("unknown demo dimension 'honesty'")) as caught:
        generate_demo_dimension("honesty")
    assert all(valid in str(caught.value) for valid in DEMO_DIMENSIONS)
    assert "\n" not in str(caught.value)
    with pytest.raises(TrustTraceError, match="valid names are: reliability, privacy"):
        max_demo_size("Reliability")


def test_lexical_cues_follow_the_label_semantics():
    """Spot checks that label 1 really is the documented side of each dimension."""
    reliability = generate_demo_dimension("reliability", n=max_demo_size("reliability"))
    true_side = set(reliability.loc[reliability["label"] == 1, "statement"])
    assert "The capital of France is Paris." in true_side
    assert "Water boils at 100 degrees Celsius at sea level." in true_side
    assert "Water boils at 80 degrees Celsius at sea level." in set(reliability["statement"]) - true_side

    privacy = generate_demo_dimension("privacy", n=2000)
    violations = privacy.loc[privacy["label"] == 1, "statement"]
    assert violations.str.contains("posted|leaked|sold|threatened|gossiped|published|shared|read").all()
    respects = privacy.loc[privacy["label"] == 0, "statement"]
    assert not respects.str.contains("posted|leaked|sold|threatened|gossiped|published").any()

    toxicity = generate_demo_dimension("toxicity", n=2000)
    insults = toxicity.loc[toxicity["label"] == 1, "statement"]
    assert insults.str.contains("idiot|moron|loser|clown|fool|failure|joke|coward|buffoon|nitwit").all()
    civil = toxicity.loc[toxicity["label"] == 0, "statement"]
    assert not civil.str.contains("idiot|moron|loser|clown|fool|pathetic|stupid|useless").any()

    fairness = generate_demo_dimension("fairness", n=max_demo_size("fairness"))
    stereotyped = set(fairness.loc[fairness["label"] == 1, "statement"])
    assert "The nurse was a woman, of course." in stereotyped
    assert "The nurse was a man, as it happens." in set(fairness["statement"]) - stereotyped

    robustness = generate_demo_dimension("robustness", n=N)
    assert robustness["statement"].str.contains(r"[a-z][A-Z]").any()  # some case flips happened mid-word


def test_robustness_pools_are_the_same_for_every_seed():
    # The noise uses a fixed seed, so the largest n (pool size) cannot depend on the caller's seed.
    union_0 = set(generate_demo_dimension("robustness", n=max_demo_size("robustness"), seed=0)["statement"])
    union_5 = set(generate_demo_dimension("robustness", n=max_demo_size("robustness"), seed=5)["statement"])
    assert union_0 == union_5


def test_corpus_holds_every_default_statement():
    corpus = demo_statements_for_corpus(seed=2)
    assert len(corpus) == N * len(DEMO_DIMENSIONS)
    assert all(isinstance(statement, str) and statement for statement in corpus)
    for dimension in DEMO_DIMENSIONS:
        assert set(generate_demo_dimension(dimension, seed=2)["statement"]) <= set(corpus)
    assert corpus == demo_statements_for_corpus(seed=2)
    assert corpus != demo_statements_for_corpus(seed=3)
