"""The models resource: create, read, patch, delete, list and search; name and body rules; the
model-types catalogue it draws from."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx2
import msgspec
import pytest

from service.settings import Settings
from tests.factories import LOGREG, ClientFactory, json_of, wait_until

pytestmark = pytest.mark.anyio


async def create(
    client: httpx2.AsyncClient, name: str = "iris", **fields: object
) -> httpx2.Response:
    body = {"name": name, "model_type": LOGREG, **fields}
    return await client.post("/models", json=body)


async def test_create_get_and_location(client: httpx2.AsyncClient) -> None:
    response = await create(
        client,
        title="Iris",
        tags=["flowers"],
        settings={"C": 0.5},
        features=["sepal_length", "sepal_width"],
        target="species",
    )
    assert response.status_code == 201, response.text
    assert response.headers["location"] == "/models/iris"
    body = json_of(response)
    assert body["name"] == "iris"
    assert body["settings"] == {"C": 0.5}
    assert body["can_input"] and body["can_output"] and body["can_update"]
    assert body["created_by"] == "anonymous"
    assert body["current_version"] is None
    assert body["status"] == "idle"
    assert body["created_at"].endswith("Z")
    fetched = await client.get("/models/iris")
    assert json_of(fetched) == body


async def test_unknown_model_is_404_problem(client: httpx2.AsyncClient) -> None:
    response = await client.get("/models/nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert "nope" in json_of(response)["detail"]


@pytest.mark.parametrize("name", ["..", "a/b", "has space", "-lead", "x" * 129, "", "iris\n"])
async def test_bad_names_are_422(client: httpx2.AsyncClient, name: str) -> None:
    response = await create(client, name=name)
    assert response.status_code == 422
    assert json_of(response)["errors"][0]["loc"] == "$.name"


async def test_invalid_hyperparameters_name_the_key(client: httpx2.AsyncClient) -> None:
    response = await create(client, settings={"C": -1})
    assert response.status_code == 422
    errors = json_of(response)["errors"]
    assert errors[0]["loc"] == "$.settings.C"
    assert "C" in errors[0]["msg"]
    response = await create(client, settings={"not_a_param": 1})
    assert response.status_code == 422
    assert json_of(response)["errors"][0]["loc"] == "$.settings.not_a_param"


async def test_unknown_model_type_is_422(client: httpx2.AsyncClient) -> None:
    response = await client.post("/models", json={"name": "m", "model_type": "os.system"})
    assert response.status_code == 422
    assert json_of(response)["errors"][0]["loc"] == "$.model_type"


async def test_target_cannot_be_a_feature(client: httpx2.AsyncClient) -> None:
    response = await create(client, features=["a", "y"], target="y")
    assert response.status_code == 422


async def test_unreadable_or_unsupported_bodies_are_4xx_problems(
    client: httpx2.AsyncClient,
) -> None:
    response = await client.post(
        "/models", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    response = await client.post(
        "/models", content=b"name=x", headers={"content-type": "text/plain"}
    )
    assert response.status_code == 415
    response = await client.post("/models", json={"name": "m", "model_type": LOGREG, "extra": 1})
    assert response.status_code == 422
    response = await client.post("/models", json={"name": 5, "model_type": LOGREG})
    assert json_of(response)["errors"] == [{"loc": "$.name", "msg": "Expected `str`, got `int`"}]


async def test_body_over_the_limit_is_413_without_reading_it(
    client_factory: ClientFactory, settings: Settings
) -> None:
    small = msgspec.structs.replace(
        settings, http=msgspec.structs.replace(settings.http, max_body_bytes=1000)
    )
    client = await client_factory(small)
    response = await client.post(
        "/models", content=b"x" * 5000, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(10_000):
            yield b"x" * 1000

    streamed = await client.post(
        "/models",
        content=endless(),
        headers={"content-type": "application/json"},
    )
    assert streamed.status_code == 413


async def test_twenty_concurrent_creates_give_one_201(client: httpx2.AsyncClient) -> None:
    responses = await asyncio.gather(*(create(client, name="dup") for _ in range(20)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 19
    conflict = next(r for r in responses if r.status_code == 409)
    assert json_of(conflict)["type"] == "/problems/conflict"


async def test_patch_keeps_omitted_fields(client: httpx2.AsyncClient) -> None:
    await create(client, title="T", description="D", tags=["a"], source="S")
    before = json_of(await client.get("/models/iris"))
    response = await client.patch("/models/iris", json={"title": "New"})
    assert response.status_code == 200
    after = json_of(response)
    assert after["title"] == "New"
    assert (after["description"], after["tags"], after["source"]) == ("D", ["a"], "S")
    assert after["updated_at"] > before["updated_at"]
    cleared = json_of(await client.patch("/models/iris", json={"description": None}))
    assert cleared["description"] is None and cleared["title"] == "New"
    assert (await client.patch("/models/nope", json={})).status_code == 404
    assert (await client.patch("/models/iris", json={"settings": {}})).status_code == 422


async def test_a_deleted_model_is_gone_and_its_name_free_again(client: httpx2.AsyncClient) -> None:
    await create(client)
    assert (await client.delete("/models/iris")).status_code == 204
    assert (await client.get("/models/iris")).status_code == 404
    assert (await client.delete("/models/iris")).status_code == 404
    assert (await create(client)).status_code == 201


async def test_list_search_and_paging(client: httpx2.AsyncClient) -> None:
    for i in range(5):
        await create(
            client, name=f"m{i}", tags=["even" if i % 2 == 0 else "odd"], title=f"Model {i}"
        )
    page = json_of(await client.get("/models", params={"limit": 2}))
    assert page["total"] == 5 and page["limit"] == 2 and page["offset"] == 0
    assert [m["name"] for m in page["items"]] == ["m0", "m1"]
    page = json_of(
        await client.get(
            "/models",
            params={"where": "tags CONTAINS even", "order_by": "name", "order_by_sort": "desc"},
        )
    )
    assert [m["name"] for m in page["items"]] == ["m4", "m2", "m0"]
    page = json_of(
        await client.get(
            "/models",
            params=[("where", 'title = "Model 3"'), ("select", "name"), ("select", "status")],
        )
    )
    assert page["items"] == [{"name": "m3", "status": "idle"}]
    bad = await client.get("/models", params={"where": "nosuch = 1"})
    assert bad.status_code == 400
    assert "nosuch" in bad.text


async def test_the_model_type_catalogue_lists_and_describes_each_type(
    client: httpx2.AsyncClient,
) -> None:
    async def listed() -> bool:
        page = json_of(await client.get("/model-types", params={"where": "name = " + LOGREG}))
        return bool(page["total"] == 1)

    await wait_until(listed, 30, "the catalogue, synced in the background at start")
    one = json_of(await client.get(f"/model-types/{LOGREG}"))
    assert one["task"] == "classification" and one["incremental"] is False
    assert one["hyperparameters"]["properties"]["C"]["default"] == 1.0
    assert (await client.get("/model-types/sklearn.nope.Nope")).status_code == 404
    incremental = json_of(
        await client.get(
            "/model-types",
            params=[("where", "incremental = true"), ("select", "name"), ("limit", "1000")],
        )
    )
    assert "sklearn.linear_model.SGDClassifier" in {t["name"] for t in incremental["items"]}


@pytest.mark.parametrize(
    "path", ["/models/a%00b", "/models/" + "x" * 300, "/models/%2e%2e", "/models/%C3%A9"]
)
async def test_impossible_names_in_paths_are_404(client: httpx2.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_nul_characters_are_refused_not_500(client: httpx2.AsyncClient) -> None:
    body = b'{"name": "m", "model_type": "sklearn.linear_model.Ridge", "title": "a\\u0000b"}'
    response = await client.post(
        "/models", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    train = await client.post(
        "/models/m/train",
        content=b'{"data": [{"x": 1}], "parameters": {"k": "\\u0000"}}',
        headers={"content-type": "application/json"},
    )
    assert train.status_code == 422
