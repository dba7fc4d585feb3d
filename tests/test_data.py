"""Dimension CSVs: every unusable file is named with a one-line error; splits are stratified, shuffled, seeded."""

import numpy as np
import pandas as pd
import pytest
from helpers import SHARED_DATASETS
from trusttrace.data import (
    assign_split,
    normalise_casefold,
    prepare_dimension,
    prepare_dimension_with_report,
    read_labelled_csv,
    stratified_sample,
)
from trusttrace.errors import TrustTraceError


def write(tmp_path, text, name="d.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def balanced_csv(n=20):
    return "statement,label\n" + "".join(f"statement number {i}.,{i % 2}\n" for i in range(n))


@pytest.mark.parametrize(
    "content, message",
    [
        ("text,label\na.,1\n", r"no column 'statement' \(the text_column\)"),
        ("statement,y\na.,1\n", r"no column 'label' \(the label_column\)"),
        (
            "statement,label\n" + "a.,1\n" * 6 + "b.,2\n" + "c.,0\n" * 6,
            r"must hold 0 or 1; 1 rows do not \(first: data row 7, value '2'\)",
        ),
        (
            "statement,label\n" + "a.,1\n" * 6 + "b.,\n" + "c.,0\n" * 6,
            r"must hold 0 or 1; 1 rows do not \(first: data row 7, value ''\)",
        ),
        ("statement,label\n" + "a.,1\n" * 6 + "b.,NaN\n" + "c.,0\n" * 6, r"must hold 0 or 1"),
        ("statement,label\n" + "a.,1\n" * 10, r"only one class \(label counts 0: 0, 1: 10\)"),
        ("statement,label\n" + "a.,1\n" * 6 + " ,0\n" + "c.,0\n" * 6, r"1 empty statements .* \(first: data row 7\)"),
        ("statement,label\n" + "a.,1\n" * 6 + "c.,0\n" * 2, r"too few rows to split \(label counts 0: 2, 1: 6"),
        ("", r"not a readable CSV"),
    ],
)
def test_bad_csv_is_named(tmp_path, content, message):
    with pytest.raises(TrustTraceError, match=message):
        read_labelled_csv(write(tmp_path, content))


def test_missing_csv(tmp_path):
    with pytest.raises(TrustTraceError, match=r"nope\.csv: dimension CSV not found"):
        read_labelled_csv(tmp_path / "nope.csv")


@pytest.mark.parametrize(
    "rows, where",
    [
        (["caf\xe9.,1"], "data row 1"),
        (['"two\nlines, quoted",1', "ok.,0", "", "caf\xe9.,1"], "data row 3"),  # a quoted newline, a blank line
        (["ok.,0", "\xe9tat.,1"], "data row 2"),  # the bad byte starts its row
    ],
)
def test_non_utf8_csv_names_the_data_row(tmp_path, rows, where):
    path = tmp_path / "latin1.csv"
    path.write_bytes(("statement,label\n" + "\n".join(rows) + "\n").encode("latin-1"))
    with pytest.raises(TrustTraceError, match=rf"not UTF-8 text \(invalid .* in {where}, byte \d+"):
        read_labelled_csv(path)


def test_non_utf8_far_into_a_large_csv_and_in_the_header(tmp_path):
    # pandas decodes in chunks and reports a chunk-relative offset: the row must come from the whole file.
    path = tmp_path / "big.csv"
    rows = [f"statement number {i} is long enough to fill the reader's buffers quickly.,{i % 2}" for i in range(30000)]
    rows[24999] = "caf\xe9.,1"
    path.write_bytes(("statement,label\n" + "\n".join(rows) + "\n").encode("latin-1"))
    assert path.stat().st_size > 2_000_000
    with pytest.raises(TrustTraceError, match=r"in data row 25000, byte"):
        read_labelled_csv(path)
    path.write_bytes("stat\xe9ment,label\na.,1\n".encode("latin-1"))
    with pytest.raises(TrustTraceError, match=r"in the header"):
        read_labelled_csv(path)


def test_bom_quotes_and_custom_columns(tmp_path):
    rows = ['"a, quoted\nstatement",1', "NA,0"] + [f"s{i}.,{i % 2}" for i in range(12)]
    path = write(tmp_path, "\ufefftext,y\n" + "\n".join(rows) + "\n")
    frame = read_labelled_csv(path, "text", "y")
    assert frame["statement"].iloc[0] == "a, quoted\nstatement"
    assert frame["statement"].iloc[1] == "NA"  # not read as a missing value
    assert frame["row_id"].tolist() == list(range(14))
    assert frame["label"].dtype == np.int8


def test_split_is_stratified_shuffled_and_seeded():
    labels = np.array([0] * 300 + [1] * 100)  # file order sorted by label: a first-80% split would be all wrong
    split = assign_split(labels, 0.2, seed=0, validation_fraction=0.1)
    for value, n in ((0, 300), (1, 100)):
        assert (split[labels == value] == "test").sum() == 0.2 * n
        assert (split[labels == value] == "validation").sum() == 0.1 * n
    assert (split[:320] == "test").sum() > 0 and (split[320:] == "train").sum() > 0
    assert (assign_split(labels, 0.2, seed=0, validation_fraction=0.1) == split).all()
    assert (assign_split(labels, 0.2, seed=1, validation_fraction=0.1) != split).any()
    two_way = assign_split(labels, 0.2, seed=0)
    assert set(two_way) == {"train", "test"} and (two_way == "test").sum() == 80


def test_split_needs_rows_of_each_class_in_each_split():
    with pytest.raises(TrustTraceError, match=r"the test split gets 1 rows of class 1 \(need 2\)"):
        assign_split(np.array([0] * 40 + [1] * 7), 0.2, seed=0)
    with pytest.raises(TrustTraceError, match=r"the validation split gets [01] rows of class [01]"):
        assign_split(np.array([0] * 40 + [1] * 12), 0.2, seed=0, validation_fraction=0.02)
    assign_split(np.array([0] * 40 + [1] * 12), 0.2, seed=0, validation_fraction=0.0)  # no validation wanted: fine


def test_stratified_sample_keeps_proportions():
    labels = np.array([0] * 750 + [1] * 250)
    rows = stratified_sample(labels, 100, seed=3)
    assert len(rows) == 100 and (labels[rows] == 1).sum() == 25 and (np.diff(rows) > 0).all()
    assert (stratified_sample(labels, 100, seed=3) == rows).all()
    assert len(stratified_sample(labels, None, seed=3)) == 1000


def test_groups_never_cross_splits_and_are_subsampled_whole():
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 7, size=300)  # like TruthfulQA: 1..6 rows per question
    groups = np.repeat(np.arange(300), sizes)
    labels = rng.integers(0, 2, size=len(groups))
    for seed in range(5):
        split = assign_split(labels, 0.2, seed, validation_fraction=0.2, groups=groups)
        per_group = pd.DataFrame({"g": groups, "s": split}).groupby("g")["s"].nunique()
        assert (per_group == 1).all()
        for name in ("test", "validation"):
            # within half the largest group of the target (all strata laid end to end)
            assert abs((split == name).sum() - 0.2 * len(groups)) <= 3
        rows = stratified_sample(labels, 200, seed, groups)
        taken = np.isin(groups, groups[rows])
        assert taken.sum() == len(rows) and abs(len(rows) - 200) <= 3
        assert abs(labels[rows].mean() - labels.mean()) < 0.06


def test_mixed_groups_are_stratified_by_majority_label():
    # 20 groups of (1, 1, 0) and 20 of (0, 0, 1): majority 1 and majority 0, each stratum split 20/20/60.
    groups = np.repeat(np.arange(40), 3)
    labels = np.array([1, 1, 0] * 20 + [0, 0, 1] * 20)
    split = assign_split(labels, 0.2, 0, validation_fraction=0.2, groups=groups)
    for half in (slice(0, 60), slice(60, 120)):
        assert [(split[half] == name).sum() for name in ("test", "validation", "train")] == [12, 12, 36]


@pytest.mark.parametrize(
    "group_by, n_groups",
    # prefix is case-sensitive: each question's clean and upper-case forms are two groups
    [("exact", 80), ("casefold", 40), ("prefix:\t", 40), ("column:pair", 40), ("none", 80)],
)
def test_group_by_keys(tmp_path, group_by, n_groups):
    rows = []
    for i in range(40):  # 20 questions x 2 sentences x (clean, upper-case copy)
        sentence = f"Q: question {i // 2}?\tA: answer {i}."
        rows += [(sentence, 0, i), (sentence.upper().replace("\t", "\t  "), 1, i)]
    frame = pd.DataFrame(rows, columns=["statement", "label", "pair"])
    path = tmp_path / "g.csv"
    frame.to_csv(path, index=False)
    data = prepare_dimension(path, group_by=group_by, test_fraction=0.2, validation_fraction=0.2, seed=0)
    assert data["group"].nunique() == n_groups and len(data) == 80
    assert (data.groupby("group")["split"].nunique() == 1).all()
    if group_by in ("casefold", "column:pair"):  # the two copies of a sentence are one group
        assert (data.groupby("group")["statement"].apply(lambda s: s.map(normalise_casefold).nunique()) == 1).all()
    if group_by == "prefix:\t":  # the two answers of a question are one group
        assert (data.groupby("group")["statement"].apply(lambda s: s.str.split("\t").str[0].nunique()) == 1).all()
        assert (data.groupby("group").size() == 2).all()


def test_column_groups_are_joined_by_identical_statements(tmp_path):
    # pairs 0 and 1 share the statement "same." (a duplicate across pairs): all four rows must be one group.
    rows = [("same.", 1, 0), ("other a.", 0, 0), ("same.", 1, 1), ("other b.", 0, 1)]
    rows += [(f"s{i}.", i % 2, 10 + i // 2) for i in range(40)]
    path = tmp_path / "p.csv"
    pd.DataFrame(rows, columns=["statement", "label", "pair"]).to_csv(path, index=False)
    data = prepare_dimension(path, group_by="column:pair", seed=0)
    joined = data[data["row_id"] < 4]
    assert joined["group"].nunique() == 1 and joined["split"].nunique() == 1
    assert data["group"].nunique() == 1 + 20


def test_group_by_errors(tmp_path):
    path = write(tmp_path, balanced_csv(40))
    with pytest.raises(TrustTraceError, match=r"no column 'pair' \(the group_by column\)"):
        prepare_dimension(path, group_by="column:pair")
    with pytest.raises(TrustTraceError, match=r"no statement contains the separator '\\\\t'.*double quotes"):
        prepare_dimension(path, group_by="prefix:\\t")  # a backslash and a t, as YAML reads 'prefix:\t'
    with pytest.raises(TrustTraceError, match=r"group_by: 'first' is not one of"):
        prepare_dimension(path, group_by="first")
    empty_pair = "statement,label,pair\n" + "".join(f"s{i}.,{i % 2},{i if i != 3 else ''}\n" for i in range(40))
    with pytest.raises(TrustTraceError, match=r"1 rows have an empty 'pair' \(first: data row 4\)"):
        prepare_dimension(write(tmp_path, empty_pair, "e.csv"), group_by="column:pair")


def conflicting_csv():
    rows = [f"statement number {i}.,{i % 2}" for i in range(40)]
    rows[10] = "statement number 3.,0"  # statement 3 (label 1) again with label 0: data rows 4 and 11
    rows[20] = "statement number 3.,1"  # and once more with label 1: data row 21
    rows[30] = "statement number 5.,1"  # an exact duplicate with the same label: kept, one group
    rows[35] = "statement number 7.,0"  # statement 7 with label 0: data rows 8 and 36
    return "statement,label\n" + "\n".join(rows) + "\n"


def test_conflicting_labels_error_names_the_rows(tmp_path):
    message = r"2 statements occur with both labels \(data rows 4 and 11 and 21; 8 and 36\); fix the file or set on_con"
    with pytest.raises(TrustTraceError, match=message):
        prepare_dimension(write(tmp_path, conflicting_csv()))


def test_conflicting_labels_dropped_and_counted(tmp_path):
    data, report = prepare_dimension_with_report(write(tmp_path, conflicting_csv()), on_conflict="drop", seed=0)
    assert report["conflicting_statements"] == 2 and report["conflict_rows_dropped"] == 5
    assert report["rows_read"] == 40 and report["rows"] == len(data) == 35
    assert not data["statement"].isin(["statement number 3.", "statement number 7."]).any()
    assert report["duplicate_rows"] == 1 and report["n_groups"] == 34
    assert data.loc[data["statement"] == "statement number 5.", "group"].nunique() == 1
    assert sum(sum(c.values()) for c in report["counts"].values()) == 35
    assert report["counts"]["test"] == {
        str(v): int(((data["split"] == "test") & (data["label"] == v)).sum()) for v in (0, 1)
    }


def test_prepare_dimension_columns(tmp_path):
    frame = prepare_dimension(write(tmp_path, balanced_csv(40)), max_samples=30, test_fraction=0.2, seed=0)
    assert list(frame.columns) == ["row_id", "statement", "label", "split", "group"]
    assert len(frame) == 30 and frame["row_id"].is_unique and frame["group"].is_unique
    assert frame["split"].value_counts().to_dict() == {"train": 18, "test": 6, "validation": 6}
    again = prepare_dimension(write(tmp_path, balanced_csv(40)), max_samples=30, test_fraction=0.2, seed=0)
    pd.testing.assert_frame_equal(frame, again)
    none = prepare_dimension(write(tmp_path, balanced_csv(40)), validation_fraction=0.0, seed=0)
    assert none["split"].value_counts().to_dict() == {"train": 32, "test": 8}


@pytest.mark.skipif(not SHARED_DATASETS.is_dir(), reason="../shared/datasets not present")
@pytest.mark.parametrize(
    "name, rows",
    [("truthfulqa_train", 2263), ("confaide", 2346), ("toxigen", 6514), ("stereoset", 1952), ("sst2", 3642)],
)
def test_real_datasets_read(name, rows):
    frame = read_labelled_csv(SHARED_DATASETS / f"{name}.csv")
    assert len(frame) == rows and set(frame["label"].unique()) == {0, 1}


@pytest.mark.skipif(not SHARED_DATASETS.is_dir(), reason="../shared/datasets not present")
def test_truthfulqa_test_has_no_labels():
    with pytest.raises(TrustTraceError, match=r"no column 'statement'"):
        read_labelled_csv(SHARED_DATASETS / "truthfulqa_test.csv")
