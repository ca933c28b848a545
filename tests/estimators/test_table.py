"""Table and Frame: records, shapes, cell locations, kinds and numeric conversion."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.domain.errors import InvalidInput
from service.estimators.frame import Frame, resolve_columns
from service.estimators.table import Table


def test_from_records_with_uneven_keys() -> None:
    table = Table.from_records([{"a": 1, "b": "x"}, {"b": "y", "c": 2.0}, {"a": 3}])
    assert table.columns == ["a", "b", "c"]
    assert [list(row) for row in table.rows] == [[1, "x", None], [None, "y", 2.0], [3, None, None]]
    assert table.cell(1, "c") == "$.data[1].c"


def test_from_records_edge_cases() -> None:
    assert len(Table.from_records([])) == 0
    single = Table.from_records([{"x": 1}, {"x": 2}])
    assert [tuple(row) for row in single.rows] == [(1,), (2,)]
    same_size = Table.from_records([{"a": 1, "b": 2}, {"a": 3, "c": 4}])
    assert same_size.columns == ["a", "b", "c"]


def test_cell_locations_follow_rows_or_records_style() -> None:
    rows = Table(["x", "odd name"], [[1, 2]], path="$.rows")
    assert rows.cell(0, "odd name") == "$.rows[0][1]"
    records = Table.from_records([{"odd name": 1}])
    assert records.cell(0, "odd name") == '$.data[0]["odd name"]'


def test_a_row_of_the_wrong_length_is_located() -> None:
    with pytest.raises(InvalidInput) as exc:
        Table(["a", "b"], [[1, 2], [3]]).check_shape()
    assert [(e.loc, e.msg) for e in exc.value.errors] == [
        ("$.rows[1]", "has 1 values; expected 2 (one per column)")
    ]
    with pytest.raises(InvalidInput):
        Table(["a", "b"], np.ones((2, 3))).check_shape()
    Table(["a", "b"], np.ones((2, 2))).check_shape()


def test_kinds_look_past_missing_values() -> None:
    frame = Frame(Table(["a", "b", "c"], [[None, None, None], [1, "x", None]]))
    assert frame.kinds(["a", "b", "c"]) == {"a": "numeric", "b": "text", "c": "numeric"}


def test_features_default_to_every_column_but_the_target() -> None:
    frame = Frame(Table(["a", "b", "y"], [[1, 2, 3]]))
    assert resolve_columns(frame, None, "y", supervised=True) == ["a", "b"]
    assert resolve_columns(frame, ["b"], "y", supervised=True) == ["b"]
    with pytest.raises(InvalidInput) as exc:
        resolve_columns(frame, ["a", "a"], None, supervised=False)
    assert [(e.loc, e.msg) for e in exc.value.errors] == [("$.features[1]", "'a' is listed twice")]
    with pytest.raises(InvalidInput) as exc:
        resolve_columns(Frame(Table(["y"], [[1]])), None, "y", supervised=True)
    assert [e.loc for e in exc.value.errors] == ["$.features"]


def test_mixed_matrix_holds_floats_and_text() -> None:
    frame = Frame(Table(["n", "t"], [[1, "a"], ["2.5", 3]]))
    matrix = frame.features(["n", "t"], {"n": "numeric", "t": "text"}, allow_nan=False)
    assert matrix.dtype == object
    assert matrix.tolist() == [[1.0, "a"], [2.5, "3"]]


def test_numeric_rows_may_be_a_numpy_array() -> None:
    frame = Frame(Table(["a", "b"], np.array([[1, "x"], [2, "y"]], dtype=object)))
    assert frame.numeric(["a"]).tolist() == [[1.0], [2.0]]


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=50, deadline=None)  # no flaky deadlines on a busy host
@given(st.lists(st.tuples(finite, finite, st.integers(-5, 5)), min_size=1, max_size=30))
def test_numeric_conversion_matches_numpy(rows: list[tuple[float, float, int]]) -> None:
    frame = Frame(Table(["a", "b", "c"], [list(row) for row in rows]))
    expected = np.asarray(rows, dtype=np.float64)
    assert np.array_equal(frame.numeric(["c", "a"]), expected[:, [2, 0]])
    assert np.array_equal(frame.features(["a", "b", "c"], dict.fromkeys("abc", "numeric"),
                                         allow_nan=False), expected)  # fmt: skip


@settings(max_examples=50, deadline=None)  # no flaky deadlines on a busy host
@given(
    st.lists(
        st.dictionaries(st.sampled_from("abcd"), st.integers() | st.text(max_size=3) | st.none()),
        max_size=10,
    )
)
def test_from_records_keeps_every_value(records: list[dict[str, Any]]) -> None:
    table = Table.from_records(records)
    assert set(table.columns) == {key for record in records for key in record}
    for record, row in zip(records, table.rows, strict=True):
        assert dict(zip(table.columns, row, strict=True)) == {
            column: record.get(column) for column in table.columns
        }
