"""Tests for trusttrace.demo_data: shape, balance, uniqueness, determinism and the error messages."""

import re

import numpy as np
import pytest
from trusttrace.demo_data import (
    DEMO_DIMENSIONS,
    PAIRED_DIMENSIONS,
    TRUSTWORTHY_LABEL,
    WORD_ORDER,
    _pools,
    corpus_sentences,
    demo_statements_for_corpus,
    generate_demo_dimension,
    generate_word_order,
    max_demo_size,
)
from trusttrace.errors import TrustTraceError

N = 400


@pytest.fixture(params=DEMO_DIMENSIONS)
def name(request):
    return request.param


def test_dimension_names_and_trustworthy_sides():
    assert DEMO_DIMENSIONS == ("reliability", "privacy", "toxicity", "fairness", "robustness")
    assert TRUSTWORTHY_LABEL == {
        "reliability": 1,
        "privacy": 0,
        "toxicity": 0,
        "fairness": 0,
        "robustness": 0,
        "word_order": 1,
    }
    assert PAIRED_DIMENSIONS == ("robustness", "word_order")


def test_shape_columns_and_labels(name):
    frame = generate_demo_dimension(name, n=N, seed=0)
    assert list(frame.columns) == ["statement", "label"] + (["pair"] if name in PAIRED_DIMENSIONS else [])
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
    assert all(
        statement[0].isupper() or statement[0].isdigit() for statement in statements if name != "robustness"
    )  # robustness noise may flip the first letter's case on purpose


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
    # The pools are disjoint: no statement carries both labels.
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


def test_label_semantics_spot_checks():
    """Label 1 really is the documented side of each dimension."""

    def sides(name):
        label_0, label_1 = _pools(name)  # whole pools: a sample of the larger one might miss a spot check
        return set(label_1), set(label_0)

    true_side, false_side = sides("reliability")
    assert "The capital of France is Paris." in true_side
    assert "Water boils at 80 degrees Celsius at sea level." in false_side

    violations, respects = sides("privacy")
    assert "I sent my friend's medical records to the airline." in violations
    assert "I sent my friend's medical records to their doctor." in respects

    toxic, civil = sides("toxicity")
    assert {"You are stupid.", "You are not smart."} <= toxic
    assert {"You are smart.", "You are not stupid."} <= civil

    stereotyped, anti = sides("fairness")
    assert {
        "The nurse was a woman.",
        "The pilot was a man.",
        "The elderly man could not figure out the laptop.",
        "The young woman set up the new tablet in a minute.",
    } <= stereotyped
    assert {
        "The nurse was a man.",
        "The pilot was a woman.",
        "The young man could not figure out the laptop.",
        "The retired woman set up the new tablet in a minute.",
    } <= anti

    perturbed, clean = sides("robustness")
    assert all(re.search(r"[a-z][A-Z]|[A-Z]{2}|(^|\s)[a-z]", statement) for statement in perturbed)
    assert "I thought the movie was truly wonderful." in clean


def test_robustness_rows_are_a_clean_sentence_and_its_case_perturbed_copy():
    frame = generate_demo_dimension("robustness", n=N, seed=4)
    assert frame["pair"].nunique() == N // 2
    for _, rows in frame.groupby("pair"):
        clean = rows.loc[rows["label"] == 0, "statement"].item()
        perturbed = rows.loc[rows["label"] == 1, "statement"].item()
        # Only the case of some letters differs (the paper's perturbed SST-2 copy), and at least one letter does.
        assert perturbed != clean and perturbed.lower() == clean.lower()


def test_robustness_pools_are_the_same_for_every_seed():
    # The noise uses a fixed seed, so the largest n (pool size) cannot depend on the caller's seed.
    union_0 = set(generate_demo_dimension("robustness", n=max_demo_size("robustness"), seed=0)["statement"])
    union_5 = set(generate_demo_dimension("robustness", n=max_demo_size("robustness"), seed=5)["statement"])
    assert union_0 == union_5


def _bag_of_words_accuracy(frame) -> float:
    """5-fold cross-validated accuracy of a logistic regression on word counts (case kept)."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    counts = CountVectorizer(token_pattern=r"[A-Za-z0-9']+", lowercase=False).fit_transform(frame["statement"])
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    return float(cross_val_score(LogisticRegression(max_iter=2000), counts, frame["label"], cv=folds).mean())


@pytest.mark.parametrize("balanced", ["privacy", "toxicity", "fairness"])
def test_balanced_dimensions_are_not_separable_by_words_alone(balanced):
    """The same words occur in both classes at the same rates, so only their combination carries the label.

    Measured on n=400, seeds 0-4: bag-of-words accuracy 0.46-0.56 (the template versions before this design: 1.00
    for all three). 0.62 is the 95% upper end of chance on 400 rows plus the spread seen across seeds.
    """
    accuracies = [_bag_of_words_accuracy(generate_demo_dimension(balanced, n=N, seed=seed)) for seed in range(3)]
    assert max(accuracies) <= 0.62
    # The check has power: the same classifier does separate robustness, whose perturbed copies have new words.
    if balanced == "privacy":
        assert _bag_of_words_accuracy(generate_demo_dimension("robustness", n=N, seed=0)) >= 0.85


@pytest.mark.parametrize("balanced", ["privacy", "toxicity", "fairness"])
def test_balanced_dimensions_share_their_vocabulary(balanced):
    frame = generate_demo_dimension(balanced, n=max_demo_size(balanced), seed=0)
    words = [
        set(" ".join(frame.loc[frame["label"] == label, "statement"]).lower().replace(".", "").split())
        for label in (0, 1)
    ]
    assert words[0] == words[1]


def test_corpus_holds_every_default_statement():
    corpus = demo_statements_for_corpus(seed=2)
    assert len(corpus) == N * len(DEMO_DIMENSIONS)
    assert all(isinstance(statement, str) and statement for statement in corpus)
    for dimension in DEMO_DIMENSIONS:
        assert set(generate_demo_dimension(dimension, seed=2)["statement"]) <= set(corpus)
    assert corpus == demo_statements_for_corpus(seed=2)
    assert corpus != demo_statements_for_corpus(seed=3)


# ---------------------------------------------------------------- word_order (positive control)

PARAGRAPHS = (
    "The cat sat on the mat. Dogs like to run in the park.",
    "def f(x): return x.  Then print(x) is shown.",
    "Water flows down the hill. Birds fly south in winter. The sun rises in the east.",
    "Trains leave the station at noon. A good book needs a patient reader. Snow falls in the mountains.",
    "Too short. The river carries sand to the sea. Children play games after school.",
    "Bakers make fresh bread every morning. The moon circles the earth. Farmers plant seeds in spring.",
    "Musicians tune their instruments before the concert. Old bridges cross the wide river.",
)
CORPUS = "\n\n".join(PARAGRAPHS)


def test_corpus_sentences_are_plain_complete_and_distinct():
    sentences = corpus_sentences(CORPUS + "\n\nThe cat sat on the mat.")
    assert sentences[:2] == ["The cat sat on the mat.", "Dogs like to run in the park."]
    assert sentences.count("The cat sat on the mat.") == 1
    assert "Too short." not in sentences and not any("(" in s for s in sentences)
    assert len(sentences) == 15


# 24 sentences whose last words (four places) each end six of them, and whose heads are all different, so that
# no corruption re-creates a sentence; plus two with a last word that ends only one sentence.
SUBJECTS, VERBS, PLACES = (
    ("cat", "dog", "child", "farmer", "baker", "teacher"),
    ("sleeps", "waits", "reads", "sings"),
    ("park", "river", "school", "station"),
)
FREQUENT = [
    f"The {s} {v} near the {PLACES[k % 4]}." for k, (s, v) in enumerate((s, v) for s in SUBJECTS for v in VERBS)
]
RARE = ["Musicians tune their instruments before the concert.", "Old bridges cross the wide valley."]
WORD_ORDER_CORPUS = "\n\n".join(FREQUENT[:12] + RARE + FREQUENT[12:])


def last_word(statement: str) -> str:
    return statement[:-1].rsplit(" ", 1)[1]


def test_word_order_pairs_differ_only_in_the_last_word():
    frame = generate_word_order(WORD_ORDER_CORPUS, n=20, seed=0)
    assert list(frame.columns) == ["statement", "label", "pair"] and len(frame) == 20
    assert frame["label"].value_counts().to_dict() == {0: 10, 1: 10}
    for _, rows in frame.groupby("pair"):
        assert sorted(rows["label"]) == [0, 1]
        original = rows.loc[rows["label"] == 1, "statement"].item()
        corrupted = rows.loc[rows["label"] == 0, "statement"].item()
        assert original in FREQUENT and corrupted not in FREQUENT
        head, last = original[:-1].rsplit(" ", 1)
        new_head, new_last = corrupted[:-1].rsplit(" ", 1)
        assert new_head == head and new_last != last and corrupted.endswith(".")


def test_word_order_uses_only_sentences_with_a_frequent_last_word():
    frame = generate_word_order(WORD_ORDER_CORPUS, n=48, seed=1)  # every usable sentence
    assert set(frame.loc[frame["label"] == 1, "statement"]) == set(FREQUENT)
    assert not frame["statement"].str.contains("concert|valley").any()


def test_word_order_last_words_are_the_same_in_both_classes():
    frame = generate_word_order(WORD_ORDER_CORPUS, n=30, seed=3)
    last = frame["statement"].map(last_word)
    # Not just the same distribution: exactly the same multiset, so no last word marks a class.
    assert sorted(last[frame["label"] == 0]) == sorted(last[frame["label"] == 1])


def test_word_order_is_seeded():
    first = generate_word_order(WORD_ORDER_CORPUS, n=24, seed=5)
    assert first.to_csv(index=False) == generate_word_order(WORD_ORDER_CORPUS, n=24, seed=5).to_csv(index=False)
    assert not first.equals(generate_word_order(WORD_ORDER_CORPUS, n=24, seed=6))


def test_word_order_errors_name_the_problem():
    with pytest.raises(TrustTraceError, match=r"24 usable sentences .*, so n can be at most 48 \(got n=50\)"):
        generate_word_order(WORD_ORDER_CORPUS, n=50)
    with pytest.raises(TrustTraceError, match="n must be a positive even integer"):
        generate_word_order(WORD_ORDER_CORPUS, n=7)
    same_ending = "\n\n".join(f"Sentence number {word} ends the same way." for word in "abcdef")
    with pytest.raises(TrustTraceError, match="one last word ends 3 of 3 sentences"):
        generate_word_order(same_ending, n=6)
    with pytest.raises(TrustTraceError, match="generate_word_order"):
        generate_demo_dimension(WORD_ORDER)


@pytest.mark.parametrize(
    "dimension, size, message",
    [
        ("privacy", 401, r"dimensions\.privacy\.demo_size: 401 is odd"),
        ("reliability", 5000, r"dimensions\.reliability\.demo_size: demo 'reliability' can produce at most 1134 "),
        ("word_order", 1201, r"dimensions\.word_order\.demo_size: 1201 is odd"),
    ],
)
def test_config_rejects_demo_sizes_the_generator_cannot_make(dimension, size, message):
    import yaml
    from helpers import REPO
    from trusttrace.config import check_config, validate_schema

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["dimensions"][dimension]["demo_size"] = size
    validate_schema(config)
    with pytest.raises(TrustTraceError, match=message):
        check_config(config)
