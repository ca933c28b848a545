"""The query language's injection corpus against the dataset routes: in every query parameter,
as dataset names (body, query string and path), as column names and as stored values. Nothing
answers 500, nothing matches what it should not, and the canary table survives."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx2
import pytest

from service.domain.datasets import NAME
from tests.factories import json_of
from tests.injection import PAYLOADS, quote

pytestmark = pytest.mark.anyio

ROWS = [{"id": i, "name": f"n{i}", "n": i * 10} for i in range(5)]
CSV = {"content-type": "text/csv"}


Params = dict[str, Any]
POSITIONS: dict[str, Callable[[str], Params]] = {
    "where value": lambda p: {"where": f"name = {quote(p)}"},
    "where bare value": lambda p: {"where": f"name = {p}"},
    "where typed value": lambda p: {"where": f"n = {quote(p)}"},
    "where IN item": lambda p: {"where": f"name IN (nomatch, {quote(p)})"},
    "where LIKE": lambda p: {"where": f"name LIKE {quote(p)}"},
    "where column": lambda p: {"where": f"{quote(p)} = 1"},
    "where term": lambda p: {"where": p},
    "where_boolean": lambda p: {"where": ["name = nomatch", "n = -1"], "where_boolean": p},
    "select": lambda p: {"select": ["id", p]},
    "order_by": lambda p: {"order_by": p},
    "order_by_sort": lambda p: {"order_by": "name", "order_by_sort": p},
    "limit": lambda p: {"limit": p},
    "group_by": lambda p: {"group_by": p},
    "aggregate": lambda p: {"aggregate": p, "aggregate_func": "count"},
    "aggregate_func": lambda p: {"aggregate": "n", "aggregate_func": p},
}
MATCHES_NOTHING = {"where value", "where bare value", "where IN item", "where_boolean"}


def encodable(payload: str) -> bool:
    try:
        payload.encode("utf-8")
    except UnicodeEncodeError:
        return False  # a lone surrogate: no HTTP client can send it
    return True


async def canary_count(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM canary")
        return count
    finally:
        await conn.close()


async def test_injection_corpus_on_dataset_routes(
    client: httpx2.AsyncClient, database_url: str
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CREATE TABLE canary (id integer); INSERT INTO canary VALUES (1), (2)")
    finally:
        await conn.close()
    assert (await client.post("/datasets", json={"name": "d", "data": ROWS})).status_code == 201
    payloads = [p for p in PAYLOADS if encodable(p)]

    for position, params_of in POSITIONS.items():
        for payload in payloads:
            params = params_of(payload)
            response = await client.get("/datasets/d/rows", params=params)
            assert response.status_code in (200, 400), (position, payload, response.text)
            if response.status_code == 200:
                page = json_of(response)
                assert len(page["items"]) <= page["total"] <= len(ROWS), (position, payload)
                if position in MATCHES_NOTHING:
                    assert page["total"] == 0, (position, payload)
        if position.startswith("where"):
            for payload in payloads:
                deleted = await client.delete("/datasets/d/rows", params=params_of(payload))
                assert deleted.status_code in (200, 400), (position, payload, deleted.text)
                if position in MATCHES_NOTHING and deleted.status_code == 200:
                    assert json_of(deleted) == {"deleted": 0}
    assert json_of(await client.get("/datasets/d"))["rows"] == len(ROWS)

    for payload in payloads:  # as a dataset name: refused unless a plain word like NULL
        valid = NAME.fullmatch(payload) is not None
        body = await client.post("/datasets", json={"name": payload, "data": ROWS})
        assert body.status_code == (201 if valid else 422), (payload, body.text)
        query = await client.post(
            "/datasets", params={"name": payload}, content=b"a\n1\n", headers=CSV
        )
        assert query.status_code == (409 if valid else 422), (payload, query.text)
        path = await client.get(f"/datasets/{urllib.parse.quote(payload, safe='')}/rows")
        assert path.status_code == (200 if valid else 404), (payload, path.text)

    columns_kept = 0
    for i, payload in enumerate(payloads):  # as a column name, and as a stored value
        record = {payload: payload, "plain": payload}
        created = await client.post("/datasets", json={"name": f"c{i}", "data": [record]})
        assert created.status_code in (201, 422), (payload, created.text)
        if created.status_code != 201:
            continue
        columns_kept += 1
        page = json_of(
            await client.get(
                f"/datasets/c{i}/rows", params={"where": f"{quote(payload)} = {quote(payload)}"}
            )
        )
        assert page["items"] == [record], payload
        exported = await client.get(f"/datasets/c{i}/rows", headers={"accept": "text/csv"})
        meta = json_of(created)["columns"]
        declared = [f"{c['name']}:{c['type']}" for c in meta]
        copied = await client.post(
            "/datasets",
            params={"name": f"copy{i}", "columns": declared},
            content=exported.content,
            headers=CSV,
        )
        assert copied.status_code == 201, (payload, copied.text)
        assert json_of(copied)["columns"] == meta
        assert json_of(await client.get(f"/datasets/copy{i}/rows"))["items"] == [record]
    assert columns_kept >= len(payloads) // 2
    assert await canary_count(database_url) == 2
