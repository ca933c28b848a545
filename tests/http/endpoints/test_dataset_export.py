"""CSV export and spreadsheet formulas: `csv_safe=true` puts `'` before text cells (and header
names) that start with `=`, `+`, `-`, `@`, tab or carriage return; numbers are never touched;
without the parameter the output is exactly what it always was."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from tests.factories import json_of

pytestmark = pytest.mark.anyio

COLUMNS = [
    {"name": "id", "type": "integer"},
    {"name": "note", "type": "text"},
    {"name": "delta", "type": "integer"},
    {"name": "x", "type": "float"},
    {"name": "@who", "type": "text"},
]
DATA = [
    {"id": 1, "note": "=1+1", "delta": -5, "x": -1.5, "@who": "@SUM(A1)"},
    {"id": 2, "note": "+41", "delta": 3, "x": 0.5, "@who": "-2"},
    {"id": 3, "note": "-x", "delta": -7, "x": -0.25, "@who": "\tTAB"},
    {"id": 4, "note": "\rCR", "delta": 0, "x": 1.5, "@who": "plain"},
    {"id": 5, "note": "a=b", "delta": None, "x": None, "@who": None},
    {"id": 6, "note": "'quoted", "delta": -1, "x": -2.5, "@who": ""},
]
# Today's output, byte for byte: what a client that does not ask for csv_safe keeps getting.
PLAIN = (
    b"id,note,delta,x,@who\n"
    b'1,"=1+1",-5,-1.5,"@SUM(A1)"\n'
    b'2,"+41",3,0.5,"-2"\n'
    b'3,"-x",-7,-0.25,"\tTAB"\n'
    b'4,"\rCR",0,1.5,"plain"\n'
    b'5,"a=b",,,\n'
    b'6,"\'quoted",-1,-2.5,""\n'
)
SAFE = (
    b"id,note,delta,x,'@who\n"
    b'1,"\'=1+1",-5,-1.5,"\'@SUM(A1)"\n'
    b'2,"\'+41",3,0.5,"\'-2"\n'
    b'3,"\'-x",-7,-0.25,"\'\tTAB"\n'
    b'4,"\'\rCR",0,1.5,"plain"\n'
    b'5,"a=b",,,\n'
    b'6,"\'quoted",-1,-2.5,""\n'
)


@pytest.fixture
async def formulas(client: httpx2.AsyncClient) -> str:
    created = await client.post(
        "/datasets", json={"name": "formulas", "columns": COLUMNS, "data": DATA}
    )
    assert created.status_code == 201, created.text
    return "formulas"


async def export(client: httpx2.AsyncClient, name: str, **params: Any) -> httpx2.Response:
    return await client.get(
        f"/datasets/{name}/rows",
        params={"order_by": "id", **params},
        headers={"accept": "text/csv"},
    )


async def test_export_without_csv_safe_is_unchanged(
    client: httpx2.AsyncClient, formulas: str
) -> None:
    default = await export(client, formulas)
    assert default.status_code == 200, default.text
    assert default.content == PLAIN
    assert (await export(client, formulas, csv_safe="false")).content == PLAIN


async def test_csv_safe_prefixes_formula_text_and_leaves_numbers(
    client: httpx2.AsyncClient, formulas: str
) -> None:
    safe = await export(client, formulas, csv_safe="true")
    assert safe.status_code == 200, safe.text
    assert safe.headers["content-type"].startswith("text/csv")
    assert safe.content == SAFE


async def test_csv_safe_applies_to_selected_and_grouped_text(
    client: httpx2.AsyncClient, formulas: str
) -> None:
    selected = await export(client, formulas, select=["note", "delta"], csv_safe="true")
    assert selected.content.splitlines()[1] == b'"\'=1+1",-5'
    grouped = await client.get(
        f"/datasets/{formulas}/rows",
        params={
            "group_by": "note",
            "aggregate": "delta",
            "aggregate_func": "sum",
            "where": "id = 3",
            "csv_safe": "true",
        },
        headers={"accept": "text/csv"},
    )
    assert grouped.status_code == 200, grouped.text
    assert grouped.content == b'note,delta_sum\n"\'-x",-7\n'


async def test_csv_safe_leaves_json_rows_alone_and_refuses_other_values(
    client: httpx2.AsyncClient, formulas: str
) -> None:
    rows = await client.get(
        f"/datasets/{formulas}/rows", params={"order_by": "id", "csv_safe": "true"}
    )
    assert rows.status_code == 200, rows.text
    assert [r["note"] for r in json_of(rows)["items"]][:3] == ["=1+1", "+41", "-x"]
    for bad in ("yes", "1", ""):
        refused = await export(client, formulas, csv_safe=bad)
        assert refused.status_code == 400, (bad, refused.text)
        assert "csv_safe" in refused.text
    twice = await client.get(
        f"/datasets/{formulas}/rows?csv_safe=true&csv_safe=true", headers={"accept": "text/csv"}
    )
    assert twice.status_code == 400


async def test_openapi_documents_csv_safe(client: httpx2.AsyncClient) -> None:
    doc = json_of(await client.get("/openapi.json"))
    params = doc["paths"]["/datasets/{name}/rows"]["get"]["parameters"]
    csv_safe = next(p for p in params if p["name"] == "csv_safe")
    assert csv_safe["in"] == "query"
    assert csv_safe["schema"]["type"] == "boolean"
    assert csv_safe["schema"]["default"] is False
