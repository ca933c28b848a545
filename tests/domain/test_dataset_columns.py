"""Column names, type inference and JSON value conversion (no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from service.domain.dataset_columns import (
    check_names,
    infer,
    json_kind,
    name_problem,
    text_kind,
    to_rows,
)
from service.domain.errors import InvalidInput
from service.schemas.datasets import ColumnSpec


@pytest.mark.parametrize(
    "name",
    ["a", "Species", "petal length", 'we"ird', "a;DROP TABLE canary;--", "é" * 31, "x" * 63],
)
def test_ordinary_column_names_are_accepted(name: str) -> None:
    assert name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty"),
        ("x" * 64, "63 bytes"),
        ("é" * 32, "63 bytes"),  # 64 bytes of UTF-8 in 32 characters
        ("a\x00b", "control"),
        ("line\nbreak", "control"),
        ("__row", "reserved"),
        ("__anything", "reserved"),
        ("ctid", "system column"),
        ("xmin", "system column"),
        ("\ud800", "Unicode"),
    ],
)
def test_unusable_column_names_are_refused_with_the_reason(name: str, why: str) -> None:
    problem = name_problem(name)
    assert problem is not None and why in problem


def test_check_names_reports_each_problem_with_its_location() -> None:
    with pytest.raises(InvalidInput) as caught:
        check_names(["a", "", "a", "ctid"], lambda i: f"$.header[{i}]")
    locs = [e.loc for e in caught.value.errors]
    assert locs == ["$.header[1]", "$.header[2]", "$.header[3]"]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([True, False, None], "boolean"),
        ([1, -5, None], "integer"),
        ([1, 2.5], "float"),
        ([2**63], "float"),  # beyond int64
        (["2024-01-01T10:00:00Z", "2024-01-02"], "timestamp"),
        (["2024-01-01T10:00:00Z", "soon"], "text"),
        (["a", 1], "text"),
        ([True, 1], "text"),
        ([None, None], "text"),
        ([], "text"),
    ],
)
def test_column_types_are_inferred_from_json_values(values: list[Any], expected: str) -> None:
    [column] = infer(["c"], [[v] for v in values], json_kind, {})
    assert column.type == expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["true", "FALSE", ""], "boolean"),
        (["1", "-2", " 3 "], "integer"),
        (["1", "2.5", "1e-3", "NaN", "-inf"], "float"),
        (["9223372036854775808"], "float"),
        (["2024-01-01", "2024-01-01 10:00:00+02:00"], "timestamp"),
        (["1", "x"], "text"),
        (["0", "1"], "integer"),  # not boolean: declare it
        (["", ""], "text"),
    ],
)
def test_column_types_are_inferred_from_csv_text(values: list[str], expected: str) -> None:
    [column] = infer(["c"], [[v] for v in values], text_kind, {})
    assert column.type == expected


def test_declared_types_win_and_short_rows_are_fine() -> None:
    columns = infer(["a", "b"], [["1"], ["2", "x"]], text_kind, {"a": "text"})
    assert columns == [ColumnSpec(name="a", type="text"), ColumnSpec(name="b", type="text")]


def test_to_rows_converts_and_locates_errors() -> None:
    columns = [
        ColumnSpec(name="i", type="integer"),
        ColumnSpec(name="f", type="float"),
        ColumnSpec(name="t", type="text"),
        ColumnSpec(name="ts", type="timestamp"),
        ColumnSpec(name="b", type="boolean"),
    ]
    rows = to_rows(
        [{"i": 1, "f": 2, "t": 3.5, "ts": "2024-01-01T01:00:00+01:00", "b": False}, {}],
        columns,
        known_only=True,
    )
    assert rows == [
        (1, 2.0, "3.5", datetime(2024, 1, 1, tzinfo=UTC), False),
        (None, None, None, None, None),
    ]
    with pytest.raises(InvalidInput) as caught:
        to_rows(
            [{"i": 1}, {"i": "x", "b": 1, "nope": 1}, {"i": True, "t": "a\x00"}],
            columns,
            known_only=True,
        )
    locs = {e.loc: e.msg for e in caught.value.errors}
    assert set(locs) == {
        "$.data[1].nope",
        "$.data[1].i",
        "$.data[1].b",
        "$.data[2].i",
        "$.data[2].t",
    }
    assert "integer" in locs["$.data[1].i"] and "NUL" in locs["$.data[2].t"]


@pytest.mark.parametrize(
    ("refused", "accepted"),
    [
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000001Z"),
        ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999998Z"),
    ],
)
def test_timestamps_the_driver_would_store_as_infinity_are_refused(
    refused: str, accepted: str
) -> None:
    column = [ColumnSpec(name="ts", type="timestamp")]
    with pytest.raises(InvalidInput) as caught:
        to_rows([{"ts": refused}], column, known_only=True)
    assert caught.value.errors[0].loc == "$.data[0].ts"
    assert to_rows([{"ts": accepted}], column, known_only=True)
