"""Bad input, fuzzed: whatever a dimension CSV or a config holds, TrustTrace either accepts it or says why in one
line (TrustTraceError) -- never a traceback from deep inside pandas or jsonschema."""

from __future__ import annotations

import copy

import yaml
from helpers import REPO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trusttrace.config import check_config, validate_schema
from trusttrace.data import prepare_dimension, read_labelled_csv
from trusttrace.errors import TrustTraceError

cell_text = st.one_of(
    st.text(min_size=0, max_size=40),
    st.sampled_from(
        ["", " ", "NA", "null", '"', '""', "a,b", "line\nbreak", "\ufeff", "0", "1", "1.0", "2", "-1", "yes"]
    ),
    st.text(alphabet="ab ,\n\"'", min_size=0, max_size=2000),  # long rows full of separators and quotes
)
label_text = st.one_of(
    st.sampled_from(["0", "1", " 1", "0 ", "1.0", "0.0", "", "nan", "2", "true", "x", "01"]), st.text(max_size=5)
)


@st.composite
def csv_bytes(draw):
    header = draw(
        st.sampled_from(["statement,label", "\ufeffstatement,label", "label,statement", "statement", "text,label", ""])
    )
    rows = draw(st.lists(st.tuples(cell_text, label_text), min_size=0, max_size=40))

    def quote(value):
        return '"' + value.replace('"', '""') + '"' if draw(st.booleans()) else value

    body = "".join(f"{quote(s)},{quote(l)}\n" for s, l in rows)
    text = header + "\n" + body
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "latin-1", "utf-16"]))
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        data = text.encode("utf-8")
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]  # truncated anywhere, mid-character included
    return data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=csv_bytes())
def test_any_csv_is_read_or_refused_in_one_line(tmp_path, data):
    path = tmp_path / "fuzz.csv"
    path.write_bytes(data)
    try:
        frame = prepare_dimension(path, test_fraction=0.2, seed=0)
    except TrustTraceError as error:
        message = str(error)
        assert "\n" not in message.strip() or message.startswith(str(path)), message
        assert str(path) in message or "class" in message
        return
    # Accepted: a usable dimension.
    assert set(frame["label"].unique()) == {0, 1}
    assert (frame["statement"].str.strip() != "").all()
    assert set(frame["split"]) == {"train", "validation", "test"}
    assert read_labelled_csv(path)["row_id"].is_unique


DEFAULT = yaml.safe_load((REPO / "config.yaml").read_text())
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 10_000), st.floats(allow_nan=True), st.text(max_size=12)),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)


def paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from paths(value, prefix + (index,))


ALL_PATHS = [p for p in paths(DEFAULT) if p]


@settings(max_examples=200, deadline=None)
@given(where=st.sampled_from(ALL_PATHS), value=json_values, extra_key=st.booleans())
def test_any_config_mutation_is_accepted_or_named(where, value, extra_key):
    config = copy.deepcopy(DEFAULT)
    node = config
    for part in where[:-1]:
        node = node[part]
    if extra_key and isinstance(node, dict):
        node[f"{where[-1]}_typo"] = value
    else:
        node[where[-1]] = value
    try:
        validate_schema(config)
        check_config(config, check_files=False)
    except TrustTraceError as error:
        message = str(error)
        assert message.startswith("config error at ") and "\n" not in message, message
