"""JSON → table → CSV → table → JSON and CSV again, for every type, with the awkward values:
NULLs, empty strings, unicode, quotes, commas, newlines, PostgreSQL's end-of-data marker,
int64 limits, subnormal floats, microseconds and UTC offsets. Then typed queries on each type."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

import httpx2
import pytest

from tests.factories import json_of

pytestmark = pytest.mark.anyio

COLUMNS = [
    {"name": "i", "type": "integer"},
    {"name": "f", "type": "float"},
    {"name": "b", "type": "boolean"},
    {"name": "t", "type": "text"},
    {"name": "ts", "type": "timestamp"},
    {"name": 'odd "name", with comma', "type": "text"},
]
TEXTS = [
    "",
    "plain",
    " lead and trail ",
    "comma, inside",
    'say "hi"',
    '"',
    '""',
    "new\nline",
    "crlf\r\nline",
    "\r",
    "tab\there",
    "unicode é 漢字 🙂",
    "\\.",
    "\\",
    "NULL",
    "null",
    "'; DROP TABLE canary; --",
    "=1+1",
    "1",
    "true",
    "2024-01-01",
]
INTS = [0, 1, -1, 2**63 - 1, -(2**63), 42, 7, None]
FLOATS = [0.0, 0.1, 1 / 3, -2.5, 1e300, 5e-324, -1e-300, 123456789.125, 2.0, None]
BOOLS = [True, False, None]
STAMPS = [
    "2024-02-29T23:59:59.123456Z",
    "1970-01-01T00:00:00Z",
    "2024-06-01T12:00:00+05:30",
    "0001-01-01T00:00:01Z",
    "9999-12-31T23:59:59.999998Z",
    "2024-03-10",
    None,
]


def records() -> list[dict[str, Any]]:
    rows = []
    for k, text in enumerate(TEXTS):
        rows.append(
            {
                "i": INTS[k % len(INTS)],
                "f": FLOATS[k % len(FLOATS)],
                "b": BOOLS[k % len(BOOLS)],
                "t": text,
                "ts": STAMPS[k % len(STAMPS)],
                'odd "name", with comma': TEXTS[-1 - k] if k % 4 else None,
            }
        )
    rows.append(dict.fromkeys(rows[0]))  # all null
    return rows


def instant(value: str | None) -> datetime | None:
    if value is None:
        return None
    text = value.replace("Z", "+00:00")
    return datetime.fromisoformat(text if "T" in text else text + "T00:00:00+00:00")


def normal(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Timestamps as instants, so `+05:30` and the equal `Z` time compare equal."""
    return [{**row, "ts": instant(row["ts"])} for row in rows]


async def all_rows(client: httpx2.AsyncClient, name: str) -> list[dict[str, Any]]:
    page = json_of(await client.get(f"/datasets/{name}/rows", params={"limit": 1000}))
    rows: list[dict[str, Any]] = page["items"]
    return rows


async def export(client: httpx2.AsyncClient, name: str, **params: Any) -> bytes:
    response = await client.get(
        f"/datasets/{name}/rows", params=params, headers={"accept": "text/csv"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return response.content


async def upload(client: httpx2.AsyncClient, name: str, body: bytes, declare: bool) -> Any:
    params: dict[str, Any] = {"name": name}
    if declare:
        params["columns"] = [f"{c['name']}:{c['type']}" for c in COLUMNS]
    response = await client.post(
        "/datasets", params=params, content=body, headers={"content-type": "text/csv"}
    )
    assert response.status_code == 201, response.text
    return json_of(response)


async def test_every_type_round_trips(client: httpx2.AsyncClient) -> None:
    data = records()
    created = await client.post("/datasets", json={"name": "src", "columns": COLUMNS, "data": data})
    assert created.status_code == 201, created.text
    assert normal(await all_rows(client, "src")) == normal(data)

    first = await export(client, "src")
    parsed = list(csv.reader(io.StringIO(first.decode(), newline="")))
    assert parsed[0] == [c["name"] for c in COLUMNS]
    assert len(parsed) == len(data) + 1
    assert parsed[1][3] == "" and first.splitlines()[1].split(b",")[3] == b'""'  # "" vs null
    assert parsed[-1] == [""] * len(COLUMNS)  # the all-null row
    assert parsed[1 + TEXTS.index("unicode é 漢字 🙂")][3] == "unicode é 漢字 🙂"

    for name, declare in (("declared", True), ("inferred", False)):
        copy = await upload(client, name, first, declare)
        assert copy["columns"] == COLUMNS, name  # inference finds the same types
        assert copy["rows"] == len(data)
        assert normal(await all_rows(client, name)) == normal(data), name
        assert await export(client, name) == first, name

    appended = await client.post(
        "/datasets/declared/rows", content=first, headers={"content-type": "text/csv"}
    )
    assert json_of(appended) == {"inserted": len(data)}
    assert normal(await all_rows(client, "declared")) == normal(data) * 2


async def test_typed_queries_on_every_type(client: httpx2.AsyncClient) -> None:
    data = records()
    await client.post("/datasets", json={"name": "q", "columns": COLUMNS, "data": data})

    def expect(keep: Any) -> list[str]:
        return [row["t"] for row in data if keep(row)]

    cases: list[tuple[list[str], Any]] = [
        (["i = 42"], lambda r: r["i"] == 42),
        ([f"i = {-(2**63)}"], lambda r: r["i"] == -(2**63)),
        (["i IN (0, 7)"], lambda r: r["i"] in (0, 7)),
        (["f > 0.5"], lambda r: r["f"] is not None and r["f"] > 0.5),
        (["f = 5e-324"], lambda r: r["f"] == 5e-324),
        (["b = true"], lambda r: r["b"] is True),
        (["b IS NULL"], lambda r: r["b"] is None),
        (['t = "comma, inside"'], lambda r: r["t"] == "comma, inside"),
        (["t = ''"], lambda r: r["t"] == ""),
        (['t CONTAINS "\\""'], lambda r: r["t"] is not None and '"' in r["t"]),
        (["t STARTSWITH '\\\\'"], lambda r: r["t"] is not None and r["t"].startswith("\\")),
        (["t ILIKE %LINE%"], lambda r: r["t"] is not None and "line" in r["t"].lower()),
        (["ts >= 2024-01-01"], lambda r: r["ts"] and instant(r["ts"]) >= instant("2024-01-01")),  # type: ignore[operator]
        (["ts = 2024-06-01T06:30:00Z"], lambda r: r["ts"] == "2024-06-01T12:00:00+05:30"),
        (
            ['"odd \\"name\\", with comma" IS NOT NULL', "i != 1"],
            lambda r: r['odd "name", with comma'] is not None and r["i"] not in (None, 1),
        ),
    ]
    for where, keep in cases:
        response = await client.get(
            "/datasets/q/rows", params={"where": where, "select": "t", "limit": 1000}
        )
        assert response.status_code == 200, (where, response.text)
        page = json_of(response)
        assert [r["t"] for r in page["items"]] == expect(keep), where
        assert page["total"] == len(expect(keep)), where
        csv_rows = list(
            csv.reader(
                io.StringIO(
                    (await export(client, "q", where=where, select="t")).decode(), newline=""
                )
            )
        )
        assert [r[0] if r else "" for r in csv_rows[1:]] == [t or "" for t in expect(keep)], where

    grouped = json_of(
        await client.get(
            "/datasets/q/rows",
            params={
                "group_by": "b",
                "aggregate": ["i", "f", "ts"],
                "aggregate_func": ["count", "min", "max"],
                "order_by": "b",
            },
        )
    )
    assert [g["b"] for g in grouped["items"]] == [False, True, None]
    trues = [r for r in data if r["b"] is True]
    assert grouped["items"][1]["i_count"] == sum(r["i"] is not None for r in trues)
    assert grouped["items"][1]["f_min"] == min(r["f"] for r in trues if r["f"] is not None)
    limited = await export(
        client, "q", limit=2, order_by="i", order_by_sort="desc", select="i", where="i > 0"
    )
    top = sorted((r["i"] for r in data if r["i"] is not None and r["i"] > 0), reverse=True)[:2]
    assert limited == f"i\n{top[0]}\n{top[1]}\n".encode()
