"""Dataset metadata, lists, patches, deletes, row deletes, errors and the route table."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx2
import msgspec
import pytest

from service.http.endpoints import OPERATIONS
from service.settings import Settings
from tests.factories import ClientFactory, json_of

pytestmark = pytest.mark.anyio

ROWS = [
    {
        "id": i,
        "x": i / 2,
        "ok": i % 2 == 0,
        "label": f"r{i}",
        "at": f"2024-01-{i + 1:02d}T00:00:00Z",
    }
    for i in range(10)
]


async def create(client: httpx2.AsyncClient, name: str = "d", **fields: Any) -> httpx2.Response:
    return await client.post("/datasets", json={"name": name, "data": ROWS, **fields})


async def test_create_get_and_location(client: httpx2.AsyncClient) -> None:
    response = await create(client, title="T", tags=["a", "b"], source="unit test")
    assert response.status_code == 201, response.text
    assert response.headers["location"] == "/datasets/d"
    body = json_of(response)
    assert body["columns"] == [
        {"name": "id", "type": "integer"},
        {"name": "x", "type": "float"},
        {"name": "ok", "type": "boolean"},
        {"name": "label", "type": "text"},
        {"name": "at", "type": "timestamp"},
    ]
    assert body["rows"] == 10 and body["created_by"] == "anonymous"
    assert body["title"] == "T" and body["tags"] == ["a", "b"] and body["source"] == "unit test"
    assert body["created_at"].endswith("Z") and body["updated_at"] == body["created_at"]
    assert json_of(await client.get("/datasets/d")) == body
    assert (await create(client)).status_code == 409
    missing = await client.get("/datasets/nope")
    assert missing.status_code == 404 and "nope" in json_of(missing)["detail"]


async def test_declared_columns_order_and_empty_dataset(client: httpx2.AsyncClient) -> None:
    response = await client.post(
        "/datasets",
        json={
            "name": "empty",
            "columns": [{"name": "when", "type": "timestamp"}, {"name": "n", "type": "float"}],
        },
    )
    assert response.status_code == 201, response.text
    assert json_of(response)["rows"] == 0
    assert [c["name"] for c in json_of(response)["columns"]] == ["when", "n"]
    typed = await client.post(
        "/datasets",
        json={
            "name": "typed",
            "columns": [{"name": "label", "type": "text"}, {"name": "id", "type": "float"}],
            "data": ROWS,
        },
    )
    columns = json_of(typed)["columns"]
    assert columns[:2] == [{"name": "label", "type": "text"}, {"name": "id", "type": "float"}]
    assert [c["name"] for c in columns[2:]] == ["x", "ok", "at"]
    page = json_of(await client.get("/datasets/typed/rows", params={"limit": 1}))
    assert page["items"][0]["id"] == 0.0 and isinstance(page["items"][0]["id"], float)


async def test_invalid_dataset_bodies_are_422_naming_the_field(client: httpx2.AsyncClient) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "bad name", "data": ROWS}, "$.name"),
        ({"name": "d", "data": [{"__row": 1}]}, "$.data[0].__row"),
        ({"name": "d", "data": [{"a": 1}, {"ctid": 2}]}, "$.data[1].ctid"),
        ({"name": "d", "data": [{"x" * 64: 1}]}, "$.data[0]"),
        ({"name": "d", "data": []}, "$.data"),
        (
            {
                "name": "d",
                "data": [{"a": 1}, {"a": "x"}],
                "columns": [{"name": "a", "type": "integer"}],
            },
            "$.data[1].a",
        ),
        (
            {
                "name": "d",
                "columns": [{"name": "a", "type": "integer"}, {"name": "a", "type": "text"}],
            },
            "$.columns[1].name",
        ),
        ({"name": "d", "columns": [{"name": "a", "type": "date"}]}, "$.columns[0].type"),
        (
            {
                "name": "d",
                "data": [{"t": "2024-13-45"}],
                "columns": [{"name": "t", "type": "timestamp"}],
            },
            "$.data[0].t",
        ),
        (
            {"name": "d", "data": [{"i": 2**63}], "columns": [{"name": "i", "type": "integer"}]},
            "$.data[0].i",
        ),
        ({"name": "d", "data": [{"a": [1]}]}, "$.data[0]"),
    ]
    for body, loc in cases:
        response = await client.post("/datasets", json=body)
        assert response.status_code == 422, (body, response.text)
        assert json_of(response)["errors"][0]["loc"].startswith(loc), (body, response.text)
    assert json_of(await client.get("/datasets"))["total"] == 0
    assert (
        await client.post("/datasets", content=b"{", headers={"content-type": "application/json"})
    ).status_code == 400
    plain = await client.post(
        "/datasets", content=b"a\n1\n", headers={"content-type": "text/plain"}
    )
    assert plain.status_code == 415
    latin = await client.post(
        "/datasets?name=l", content=b"a\n1\n", headers={"content-type": "text/csv; charset=latin-1"}
    )
    assert latin.status_code == 415
    unknown = await client.post(
        "/datasets?nme=x", content=b"a\n1\n", headers={"content-type": "text/csv"}
    )
    assert unknown.status_code == 400 and json_of(unknown)["errors"][0]["loc"] == "nme"
    no_name = await client.post(
        "/datasets", content=b"a\n1\n", headers={"content-type": "text/csv"}
    )
    assert no_name.status_code == 422 and json_of(no_name)["errors"][0]["loc"] == "name"
    bad_type = await client.post(
        "/datasets?name=c&columns=a:date", content=b"a\n1\n", headers={"content-type": "text/csv"}
    )
    assert bad_type.status_code == 422 and json_of(bad_type)["errors"][0]["loc"] == "columns[0]"


async def test_list_search_patch_and_delete(client: httpx2.AsyncClient, database_url: str) -> None:
    for name, tags in (("alpha", ["x"]), ("beta", ["x", "y"]), ("gamma", [])):
        assert (await create(client, name, tags=tags)).status_code == 201
    listed = json_of(await client.get("/datasets", params={"where": "tags CONTAINS x"}))
    assert [d["name"] for d in listed["items"]] == ["alpha", "beta"] and listed["total"] == 2
    page = json_of(
        await client.get(
            "/datasets",
            params={"select": ["name", "rows"], "order_by": "name", "order_by_sort": "desc"},
        )
    )
    assert page["items"][0] == {"name": "gamma", "rows": 10}
    assert (await client.get("/datasets", params={"where": "nope = 1"})).status_code == 400

    patched = await client.patch("/datasets/beta", json={"title": "Beta", "tags": ["z"]})
    assert patched.status_code == 200, patched.text
    body = json_of(patched)
    assert body["title"] == "Beta" and body["tags"] == ["z"] and body["source"] is None
    again = json_of(await client.patch("/datasets/beta", json={"description": "d"}))
    assert again["title"] == "Beta" and again["description"] == "d"
    assert again["updated_at"] > again["created_at"]
    assert (await client.patch("/datasets/nope", json={"title": "x"})).status_code == 404
    assert (await client.patch("/datasets/beta", json={"rows": 5})).status_code == 422

    assert (await client.delete("/datasets/beta")).status_code == 204
    assert (await client.get("/datasets/beta")).status_code == 404
    assert (await client.delete("/datasets/beta")).status_code == 404
    conn = await asyncpg.connect(database_url)
    try:
        tables = await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'datasets'")
    finally:
        await conn.close()
    assert tables == 2
    assert (await create(client, "beta")).status_code == 201  # the name is free again


async def test_query_rows_and_delete_rows(client: httpx2.AsyncClient) -> None:
    await create(client)
    page = json_of(await client.get("/datasets/d/rows"))
    assert page["items"] == ROWS and page["total"] == 10 and page["limit"] == 100
    filtered = json_of(
        await client.get(
            "/datasets/d/rows",
            params={
                "where": ["x >= 2", "ok = true"],
                "select": ["id"],
                "order_by": "id",
                "order_by_sort": "desc",
                "limit": 2,
                "offset": 1,
            },
        )
    )
    assert filtered == {"items": [{"id": 6}, {"id": 4}], "total": 3, "limit": 2, "offset": 1}
    grouped = json_of(
        await client.get(
            "/datasets/d/rows",
            params={
                "group_by": "ok",
                "aggregate": ["x", "id", "at"],
                "aggregate_func": ["sum", "count", "max"],
                "order_by": "ok",
            },
        )
    )
    assert grouped["items"] == [
        {"ok": False, "x_sum": 12.5, "id_count": 5, "at_max": "2024-01-10T00:00:00Z"},
        {"ok": True, "x_sum": 10.0, "id_count": 5, "at_max": "2024-01-09T00:00:00Z"},
    ]
    for params in (
        {"where": "__row > 1"},
        {"select": "__row"},
        {"order_by": "__row"},
        {"where": "x = abc"},
        {"where": "nope = 1"},
        {"limit": "10001"},
    ):
        response = await client.get("/datasets/d/rows", params=params)
        assert response.status_code == 400, (params, response.text)
    assert (await client.get("/datasets/nope/rows")).status_code == 404

    no_where = await client.delete("/datasets/d/rows")
    assert no_where.status_code == 400 and json_of(no_where)["errors"][0]["loc"] == "where"
    assert (
        await client.delete("/datasets/d/rows", params={"where": "id < 3", "limit": "1"})
    ).status_code == 400
    deleted = await client.delete(
        "/datasets/d/rows", params={"where": ["id < 3", "label = r9"], "where_boolean": "OR"}
    )
    assert deleted.status_code == 200 and json_of(deleted) == {"deleted": 4}
    assert json_of(await client.get("/datasets/d"))["rows"] == 6
    assert (
        await client.delete("/datasets/nope/rows", params={"where": "id = 1"})
    ).status_code == 404


async def test_append_json_and_csv(client: httpx2.AsyncClient) -> None:
    await create(client)
    appended = await client.post("/datasets/d/rows", json={"data": [{"id": 10, "label": "new"}]})
    assert appended.status_code == 200 and json_of(appended) == {"inserted": 1}
    csv_rows = b'label,id,x\n"a, b",11,1.5\n,12,\n'
    appended = await client.post(
        "/datasets/d/rows", content=csv_rows, headers={"content-type": "text/csv"}
    )
    assert appended.status_code == 200 and json_of(appended) == {"inserted": 2}, appended.text
    tail = json_of(await client.get("/datasets/d/rows", params={"where": "id >= 10"}))["items"]
    assert tail == [
        {"id": 10, "x": None, "ok": None, "label": "new", "at": None},
        {"id": 11, "x": 1.5, "ok": None, "label": "a, b", "at": None},
        {"id": 12, "x": None, "ok": None, "label": None, "at": None},
    ]
    assert json_of(await client.get("/datasets/d"))["rows"] == 13
    bad = [
        ({"data": [{"nope": 1}]}, "$.data[0].nope"),
        ({"data": [{"id": "x"}]}, "$.data[0].id"),
        ({"data": [{"id": 1}], "more": 1}, "$"),
    ]
    for body, loc in bad:
        response = await client.post("/datasets/d/rows", json=body)
        assert response.status_code == 422 and json_of(response)["errors"][0]["loc"].startswith(loc)
    for csv_body, loc in ((b"id,nope\n1,2\n", "$.header[1]"), (b"id,id\n1,2\n", "$.header[1]")):
        response = await client.post(
            "/datasets/d/rows", content=csv_body, headers={"content-type": "text/csv"}
        )
        assert response.status_code == 422 and json_of(response)["errors"][0]["loc"] == loc
    assert json_of(await client.get("/datasets/d"))["rows"] == 13
    missing = await client.post("/datasets/nope/rows", json={"data": [{"id": 1}]})
    assert missing.status_code == 404


async def test_concurrent_creates_of_one_name(client: httpx2.AsyncClient) -> None:
    responses = await asyncio.gather(*(create(client, "same") for _ in range(10)))
    assert sorted(r.status_code for r in responses) == [201] + [409] * 9


def test_routes_declare_dataset_scopes() -> None:
    scopes = {(op.method, op.path): op.scope for op in OPERATIONS if "dataset" in op.path}
    assert scopes == {
        ("POST", "/datasets"): "datasets:write",
        ("GET", "/datasets"): "datasets:read",
        ("GET", "/datasets/{name}"): "datasets:read",
        ("PATCH", "/datasets/{name}"): "datasets:write",
        ("DELETE", "/datasets/{name}"): "datasets:write",
        ("GET", "/datasets/{name}/rows"): "datasets:read",
        ("POST", "/datasets/{name}/rows"): "datasets:write",
        ("DELETE", "/datasets/{name}/rows"): "datasets:write",
    }
    batch = next(op for op in OPERATIONS if op.path == "/models/{name}/batch-predictions")
    assert batch.scope == "models:write" and batch.status == 202
    assert batch.scopes == ("models:write", "datasets:read", "datasets:write")


async def test_openapi_documents_csv_bodies(client: httpx2.AsyncClient) -> None:
    doc = json_of(await client.get("/openapi.json"))
    create_op = doc["paths"]["/datasets"]["post"]
    assert create_op["requestBody"]["content"]["text/csv"]["schema"]["type"] == "string"
    rows_op = doc["paths"]["/datasets/{name}/rows"]["get"]
    assert "text/csv" in rows_op["responses"]["200"]["content"]
    assert "/models/{name}/batch-predictions" in doc["paths"]


async def test_busy_dataset_is_a_conflict_not_a_timeout(
    client_factory: ClientFactory, settings: Settings, database_url: str
) -> None:
    impatient = msgspec.structs.replace(
        settings, database=msgspec.structs.replace(settings.database, lock_timeout_ms=200)
    )
    client = await client_factory(impatient)
    await create(client)
    reader = await asyncpg.connect(database_url)
    try:
        reading = reader.transaction()
        await reading.start()  # like an export's snapshot: the table is in use
        await reader.fetchval('SELECT count(*) FROM datasets."d_1"')
        dropped = await client.delete("/datasets/d")
        assert dropped.status_code == 409 and "busy" in json_of(dropped)["detail"]
        await reader.execute("SELECT 1 FROM dataset_catalogue WHERE name = 'd' FOR UPDATE")
        appended = await client.post("/datasets/d/rows", json={"data": [{"id": 99}]})
        assert appended.status_code == 409
        await reading.rollback()
    finally:
        await reader.close()
    assert json_of(await client.get("/datasets/d"))["rows"] == 10
    assert (await client.delete("/datasets/d")).status_code == 204
