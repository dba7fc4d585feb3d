"""Dimension CSVs: every unusable file is named with a one-line error; splits are stratified, shuffled, seeded."""

import numpy as np
import pandas as pd
import pytest

from conftest import SHARED_DATASETS
from trusttrace.data import assign_split, prepare_dimension, read_labelled_csv, stratified_sample
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
        ("statement,label\n" + "a.,1\n" * 6 + "b.,2\n" + "c.,0\n" * 6, r"must hold 0 or 1; 1 rows do not \(first: data row 6, value '2'\)"),
        ("statement,label\n" + "a.,1\n" * 6 + "b.,\n" + "c.,0\n" * 6, r"must hold 0 or 1; 1 rows do not \(first: data row 6, value ''\)"),
        ("statement,label\n" + "a.,1\n" * 6 + "b.,NaN\n" + "c.,0\n" * 6, r"must hold 0 or 1"),
        ("statement,label\n" + "a.,1\n" * 10, r"only one class \(label counts 0: 0, 1: 10\)"),
        ("statement,label\n" + "a.,1\n" * 6 + " ,0\n" + "c.,0\n" * 6, r"1 empty statements .* \(first: data row 6\)"),
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


def test_non_utf8_csv(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("statement,label\ncaf\xe9.,1\n".encode("latin-1"))
    with pytest.raises(TrustTraceError, match=r"not UTF-8 text"):
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
    split = assign_split(labels, 0.2, seed=0)
    assert (split[labels == 0] == "test").sum() == 60 and (split[labels == 1] == "test").sum() == 20
    assert (split[:320] == "test").sum() > 0 and (split[320:] == "train").sum() > 0
    assert (assign_split(labels, 0.2, seed=0) == split).all()
    assert (assign_split(labels, 0.2, seed=1) != split).any()


def test_split_needs_rows_on_both_sides():
    with pytest.raises(TrustTraceError, match=r"class 1 has 1 rows: too few for test_fraction 0.2"):
        assign_split(np.array([0] * 10 + [1]), 0.2, seed=0)


def test_stratified_sample_keeps_proportions():
    labels = np.array([0] * 750 + [1] * 250)
    rows = stratified_sample(labels, 100, seed=3)
    assert len(rows) == 100 and (labels[rows] == 1).sum() == 25 and (np.diff(rows) > 0).all()
    assert (stratified_sample(labels, 100, seed=3) == rows).all()
    assert len(stratified_sample(labels, None, seed=3)) == 1000


def test_prepare_dimension_columns(tmp_path):
    frame = prepare_dimension(write(tmp_path, balanced_csv(40)), max_samples=30, test_fraction=0.2, seed=0)
    assert list(frame.columns) == ["row_id", "statement", "label", "split"]
    assert len(frame) == 30 and frame["row_id"].is_unique
    assert frame["split"].value_counts().to_dict() == {"train": 24, "test": 6}
    again = prepare_dimension(write(tmp_path, balanced_csv(40)), max_samples=30, test_fraction=0.2, seed=0)
    pd.testing.assert_frame_equal(frame, again)


@pytest.mark.skipif(not SHARED_DATASETS.is_dir(), reason="../shared/datasets not present")
@pytest.mark.parametrize(
    "name, rows", [("truthfulqa_train", 2263), ("confaide", 2346), ("toxigen", 6514), ("stereoset", 1952), ("sst2", 3642)]
)
def test_real_datasets_read(name, rows):
    frame = read_labelled_csv(SHARED_DATASETS / f"{name}.csv")
    assert len(frame) == rows and set(frame["label"].unique()) == {0, 1}


@pytest.mark.skipif(not SHARED_DATASETS.is_dir(), reason="../shared/datasets not present")
def test_truthfulqa_test_has_no_labels():
    with pytest.raises(TrustTraceError, match=r"no column 'statement'"):
        read_labelled_csv(SHARED_DATASETS / "truthfulqa_test.csv")
