"""Two tenants, `acme` and `globex`, with the same names, over every route in the route table:
whatever `acme` aims at `globex`'s resources is a 404 problem (never a 403, a 500 or `globex`'s
data), lists and totals are `acme`'s alone, creating a name `globex` uses creates `acme`'s own,
and `globex`'s rows are exactly as they were afterwards.

Every `globex` value carries the word `globex` (titles, dataset cells, predicted classes, the
`tenant` field), so a leak in any answer to `acme` shows up as that word in its body.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx2
import msgspec
import pytest

from service.http.endpoints import OPERATIONS
from service.settings import Settings
from tests.factories import LOGREG, AppClient, ClientFactory, Worker, json_of, tenant_app
from tests.iris import IRIS_FEATURES, iris_records
from tests.sse import open_stream, parse

pytestmark = pytest.mark.anyio

A, B = "acme", "globex"
OWNED = [
    "models",
    "model_versions",
    "artifacts",
    "jobs",
    "training_batches",
    "dataset_catalogue",
    "idempotency_keys",
    "model_aliases",
    "model_traffic",
    "webhooks",
]
SPECIES = {"setosa", "versicolor", "virginica"}
GX_RECEIVER = "http://127.0.0.1:9/globex-hooks"


@dataclass
class World:
    client: httpx2.AsyncClient
    raw: asyncpg.Connection
    headers: dict[str, dict[str, str]]  # by tenant: an `admin` token, so no scope masks a leak
    b_queued_job: str  # a job of globex's still in the queue (cancellable)
    b_done_job: str
    b_webhook: str  # globex's webhook (its URL and description carry the word)

    async def a(self, method: str, path: str, **kwargs: Any) -> httpx2.Response:
        """A request by acme: never a 500, never a word of globex's."""
        headers = {**self.headers[A], **kwargs.pop("headers", {})}
        response = await self.client.request(method, path, headers=headers, **kwargs)
        assert response.status_code < 500, f"{method} {path}: {response.text}"
        assert B not in response.text.lower(), f"{method} {path} leaks: {response.text[:300]}"
        return response

    async def b(self, method: str, path: str, **kwargs: Any) -> httpx2.Response:
        response = await self.client.request(method, path, headers=self.headers[B], **kwargs)
        assert response.status_code < 400, f"{method} {path}: {response.text}"
        return response

    async def gone(self, method: str, path: str, **kwargs: Any) -> None:
        """acme's request at globex's resource is the 404 of a resource that never existed."""
        response = await self.a(method, path, **kwargs)
        assert response.status_code == 404, (
            f"{method} {path}: {response.status_code} {response.text}"
        )
        assert response.headers["content-type"] == "application/problem+json"
        ids = (*self.jobs_of_b, self.b_webhook)
        swaps = {"gx-": "zz-", **{known: str(uuid.uuid4()) for known in ids}}
        missing = swapped(path, swaps)
        if missing != path:  # the same answer as for a name nobody has, so nothing tells them apart
            other = json_of(await self.a(method, missing, **kwargs))
            theirs = json_of(response)
            assert (other["status"], other["title"]) == (404, theirs["title"])
            assert other["detail"] == swapped(theirs["detail"], swaps)

    @property
    def jobs_of_b(self) -> tuple[str, str]:
        return self.b_queued_job, self.b_done_job

    async def count(self, table: str, tenant: str = A) -> int:
        return int(
            await self.raw.fetchval(f"SELECT count(*) FROM {table} WHERE tenant = $1", tenant)
        )


def swapped(text: str, swaps: dict[str, str]) -> str:
    for old, new in swaps.items():
        text = text.replace(old, new)
    return text


def records(tenant: str) -> list[dict[str, Any]]:
    """The iris measurements; globex's classes are its own (`globex-setosa`, ...)."""
    prefix = "" if tenant == A else f"{tenant}-"
    return [{**r, "species": prefix + r["species"]} for r in iris_records()]


def staff(tenant: str) -> list[dict[str, Any]]:
    return [{"id": i, **r, "note": f"{tenant} row {i}"} for i, r in enumerate(records(tenant))]


async def build_world(
    client: httpx2.AsyncClient,
    raw: asyncpg.Connection,
    headers: dict[str, dict[str, str]],
    run_worker: Worker,
) -> World:
    """Both tenants: `staff` and a trained `iris` each; globex also has `iris` version 2, the
    `gx-model` and `gx-data` acme never gets, `gx-spare(-data)` names acme creates for itself,
    a batch prediction into `gx-scored`, a queued job, the alias `production` on its `iris` and
    `gx-model`, a split on `gx-model`, and a webhook."""

    async def post(tenant: str, path: str, body: Any, status: int = 201) -> Any:
        response = await client.post(path, json=body, headers=headers[tenant])
        assert response.status_code == status, response.text
        return json_of(response)

    async def put(tenant: str, path: str, body: Any) -> None:
        response = await client.put(path, json=body, headers=headers[tenant])
        assert response.status_code == 200, response.text

    iris = {"model_type": LOGREG, "target": "species", "settings": {"max_iter": 500}}
    for tenant in (A, B):
        title = f"{tenant} iris"
        await post(tenant, "/datasets", {"name": "staff", "data": staff(tenant), "title": title})
        await post(tenant, "/models", {"name": "iris", "title": title, **iris})
        await post(tenant, "/models/iris/train", {"data": records(tenant)}, 202)
    for name in ("gx-data", "gx-spare-data"):
        await post(B, "/datasets", {"name": name, "data": staff(B), "title": "globex's"})
    for name in ("gx-model", "gx-spare"):
        await post(B, "/models", {"name": name, "title": "globex's", **iris})
    await post(B, "/models/gx-model/train", {"data": records(B)}, 202)
    await run_worker()
    await post(B, "/models/iris/train", {"data": records(B)[::2]}, 202)
    await run_worker()
    batch = {"dataset": {"name": "gx-data"}, "output_dataset": "gx-scored"}
    done = await post(B, "/models/iris/batch-predictions", batch, 202)
    await run_worker()
    for name, version in (("iris", 2), ("gx-model", 1)):
        await put(B, f"/models/{name}/aliases/production", {"version": version})
    await put(B, "/models/gx-model/traffic", {"split": [{"version": 1, "weight": 100}]})
    queued = await post(B, "/models/gx-model/train", {"data": records(B)}, 202)
    for tenant, jobs in ((A, 1), (B, 5)):
        listed = json_of(await client.get("/jobs", headers=headers[tenant]))
        assert listed["total"] == jobs, listed
        assert [j["status"] for j in listed["items"]].count("succeeded") == jobs - (tenant == B)
    hook = {"url": GX_RECEIVER, "events": ["dataset.deleted"], "description": "globex's"}
    webhook = await post(B, "/webhooks", hook)
    return World(client, raw, headers, queued["id"], done["id"], webhook["id"])


@pytest.fixture
async def world(
    client_factory: ClientFactory,
    settings: Settings,
    tmp_path: Path,
    raw: asyncpg.Connection,
    run_worker: Worker,
) -> World:
    # Webhooks on this machine are admitted, so each tenant can register one.
    webhooks = msgspec.structs.replace(settings.webhooks, allow_private=True)
    settings = msgspec.structs.replace(settings, webhooks=webhooks)
    client, tenant_headers = await tenant_app(client_factory, settings, tmp_path)
    headers = {A: tenant_headers(A, "alice"), B: tenant_headers(B, "bob")}
    return await build_world(client, raw, headers, run_worker)


async def snapshot(raw: asyncpg.Connection, tenant: str) -> dict[str, Any]:
    """Every row the tenant owns, per-dataset tables included, as the database owner sees them."""
    rows: dict[str, Any] = {}
    for table in OWNED:
        found = await raw.fetch(f"SELECT * FROM {table} WHERE tenant = $1", tenant)
        rows[table] = sorted((dict(r) for r in found), key=repr)
    for dataset in rows["dataset_catalogue"]:
        table = f'datasets."d_{dataset["id"]}"'
        rows[table] = [dict(r) for r in await raw.fetch(f"SELECT * FROM {table} ORDER BY 1")]
    return rows


# -- the recipes: what acme does on each route, and what it must get --------------------------

Recipe = Callable[[World], Awaitable[None]]
RECIPES: dict[tuple[str, str], Recipe] = {}


def recipe(*routes: str) -> Callable[[Recipe], Recipe]:
    def register(fn: Recipe) -> Recipe:
        for route in routes:
            method, path = route.split(" ")
            RECIPES[method, path] = fn
        return fn

    return register


@recipe("GET /livez", "GET /readyz", "GET /metrics", "GET /openapi.json", "GET /docs")
async def public(w: World) -> None:
    for path in ("/livez", "/readyz", "/metrics", "/openapi.json", "/docs"):
        assert (await w.a("GET", path)).status_code == 200


@recipe("GET /model-types", "GET /model-types/{type}")
async def model_types(w: World) -> None:
    assert (await w.a("GET", "/model-types")).status_code == 200
    assert (await w.a("GET", f"/model-types/{LOGREG}")).status_code == 200


@recipe("POST /models")
async def create_model(w: World) -> None:
    body = {"name": "gx-spare", "model_type": LOGREG, "target": "species"}
    created = await w.a("POST", "/models", json=body)
    assert created.status_code == 201, created.text
    assert json_of(created)["tenant"] == A
    again = await w.a("POST", "/models", json={**body, "name": "iris"})
    assert again.status_code == 409, again.text  # acme's own iris


@recipe("GET /models")
async def list_models(w: World) -> None:
    page = json_of(await w.a("GET", "/models"))
    mine = await w.raw.fetch("SELECT name FROM models WHERE tenant = $1", A)
    assert sorted(m["name"] for m in page["items"]) == sorted(r["name"] for r in mine)
    assert page["total"] == len(mine)
    await nothing_of_theirs(w, "/models", "name = 'gx-model'")


async def nothing_of_theirs(w: World, path: str, *wheres: str) -> None:
    """A list filtered to globex's rows is empty (or refuses a field it does not filter on)."""
    for where in (*wheres, f"tenant = '{B}'", "created_by = 'bob'"):
        response = await w.a("GET", path, params={"where": where})
        assert response.status_code in (200, 400), response.text
        if response.status_code == 200:
            assert (json_of(response)["total"], json_of(response)["items"]) == (0, []), where


@recipe("GET /models/{name}")
async def get_model(w: World) -> None:
    await w.gone("GET", "/models/gx-model")
    own = json_of(await w.a("GET", "/models/iris"))
    assert (own["tenant"], own["title"], own["current_version"]) == (A, "acme iris", 1)


@recipe("PATCH /models/{name}")
async def patch_model(w: World) -> None:
    await w.gone("PATCH", "/models/gx-model", json={"title": "acme's now"})


@recipe("DELETE /models/{name}")
async def delete_model(w: World) -> None:
    await w.gone("DELETE", "/models/gx-model")


@recipe("POST /models/{name}/predict")
async def predict(w: World) -> None:
    rows = {"columns": IRIS_FEATURES, "rows": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}
    await w.gone("POST", "/models/gx-model/predict", json=rows)
    await w.gone("POST", "/models/iris/predict", json={**rows, "version": 2})
    answer = json_of(await w.a("POST", "/models/iris/predict", json=rows))
    assert answer["version"] == 1 and set(answer["predictions"]) <= SPECIES


async def v2_gone(w: World, method: str, path: str, **kwargs: Any) -> None:
    """`gone`, in the Open Inference Protocol's error shape."""
    response = await w.a(method, path, **kwargs)
    assert response.status_code == 404, f"{method} {path}: {response.text}"
    other = await w.a(method, path.replace("gx-", "zz-"), **kwargs)
    assert other.status_code == 404
    assert json_of(other)["error"] == json_of(response)["error"].replace("gx-", "zz-")


@recipe("GET /v2/health/live", "GET /v2/health/ready")
async def v2_health(w: World) -> None:
    for path in ("/v2/health/live", "/v2/health/ready"):
        assert (await w.a("GET", path)).status_code == 200


@recipe("GET /v2/models/{name}", "GET /v2/models/{name}/ready")
async def v2_model(w: World) -> None:
    await v2_gone(w, "GET", "/v2/models/gx-model")
    await v2_gone(w, "GET", "/v2/models/gx-model/ready")
    own = json_of(await w.a("GET", "/v2/models/iris"))
    assert own["versions"] == ["1"]  # globex's iris has two
    assert (await w.a("GET", "/v2/models/iris/ready")).status_code == 200


@recipe("POST /v2/models/{name}/infer", "POST /v2/models/{name}/versions/{version}/infer")
async def v2_infer(w: World) -> None:
    tensor = {"name": "x", "shape": [2, 4], "datatype": "FP64"}
    body = {"inputs": [{**tensor, "data": [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3]}]}
    await v2_gone(w, "POST", "/v2/models/gx-model/infer", json=body)
    await v2_gone(w, "POST", "/v2/models/gx-model/versions/1/infer", json=body)
    await v2_gone(w, "POST", "/v2/models/iris/versions/2/infer", json=body)
    answer = json_of(await w.a("POST", "/v2/models/iris/infer", json=body))
    assert answer["model_version"] == "1" and set(answer["outputs"][0]["data"]) <= SPECIES


async def refused_source(w: World, kind: str) -> None:
    """A `dataset` source naming globex's dataset: refused before anything is stored."""
    before = await snapshot(w.raw, A)
    body = {"dataset": {"name": "gx-data"}, "features": IRIS_FEATURES, "target": "species"}
    for name in ("iris", "gx-model"):
        response = await w.a(
            "POST", f"/models/{name}/{kind}", json=body, headers={"Idempotency-Key": kind}
        )
        assert response.status_code in (404, 422), response.text
    await w.gone("POST", f"/models/gx-model/{kind}", json={"data": records(A)[:20]})
    assert await snapshot(w.raw, A) == before
    assert await w.count("idempotency_keys") == 0


@recipe("POST /models/{name}/train")
async def train(w: World) -> None:
    await refused_source(w, "train")


@recipe("POST /models/{name}/update")
async def update(w: World) -> None:
    await refused_source(w, "update")


@recipe("GET /models/{name}/status")
async def status(w: World) -> None:
    await w.gone("GET", "/models/gx-model/status")
    assert json_of(await w.a("GET", "/models/iris/status"))["status"] == "succeeded"


@recipe("POST /models/{name}/cancel")
async def cancel_model_job(w: World) -> None:
    await w.gone("POST", "/models/gx-model/cancel")


@recipe("GET /jobs")
async def list_jobs(w: World) -> None:
    page = json_of(await w.a("GET", "/jobs"))
    assert page["total"] == await w.count("jobs") == len(page["items"])
    assert {j["tenant"] for j in page["items"]} == {A}
    await nothing_of_theirs(w, "/jobs")
    for params in ({"model": "gx-model"}, {"status": "queued"}):
        response = await w.a("GET", "/jobs", params=params)
        assert response.status_code in (200, 404), response.text
        if response.status_code == 200:
            assert json_of(response)["total"] == 0


@recipe("GET /jobs/{job_id}")
async def get_job(w: World) -> None:
    await w.gone("GET", f"/jobs/{w.b_queued_job}")
    await w.gone("GET", f"/jobs/{w.b_done_job}")


@recipe("POST /jobs/{job_id}/cancel")
async def cancel_job(w: World) -> None:
    await w.gone("POST", f"/jobs/{w.b_queued_job}/cancel")
    await w.gone("POST", f"/jobs/{w.b_done_job}/cancel")


@recipe("GET /jobs/{job_id}/events")
async def stream_job(w: World) -> None:
    await w.gone("GET", f"/jobs/{w.b_queued_job}/events")
    await w.gone("GET", f"/jobs/{w.b_done_job}/events")
    own = json_of(await w.a("GET", "/jobs"))["items"][0]
    finished = await w.a("GET", f"/jobs/{own['id']}/events")  # one message, then the end
    job = parse(finished.text.strip()).json()
    assert (job["id"], job["tenant"], job["status"]) == (own["id"], A, "succeeded")


@recipe("GET /events")
async def stream_events(w: World) -> None:
    assert isinstance(w.client, AppClient)
    replay = {**w.headers[A], "Last-Event-ID": "0"}
    stream = await open_stream(w.client.app, "/events", headers=replay)
    assert stream.status == 200, stream.body
    # acme's last event, after every one of globex's: a leak would be read before it.
    last = {"name": "stream-end", "data": [{"x": 1}]}
    assert (await w.a("POST", "/datasets", json=last)).status_code == 201
    received = []
    while True:
        message = await stream.next_event()
        assert B not in (message.data or "").lower(), message.data
        event = message.json()
        received.append((int(message.id or ""), event["tenant"]))
        if event["type"] == "dataset.created" and event["data"]["name"] == "stream-end":
            break
    await stream.close()
    mine = await w.raw.fetch("SELECT id FROM events WHERE tenant = $1 ORDER BY id", A)
    assert received == [(r["id"], A) for r in mine]


@recipe("GET /models/{name}/versions")
async def list_versions(w: World) -> None:
    await w.gone("GET", "/models/gx-model/versions")
    page = json_of(await w.a("GET", "/models/iris/versions"))
    assert page["total"] == 1 and [v["tenant"] for v in page["items"]] == [A]


@recipe("GET /models/{name}/versions/{version}")
async def get_version(w: World) -> None:
    await w.gone("GET", "/models/iris/versions/2")
    await w.gone("GET", "/models/gx-model/versions/1")
    assert json_of(await w.a("GET", "/models/iris/versions/1"))["tenant"] == A


@recipe("POST /models/{name}/versions/{version}/activate")
async def activate(w: World) -> None:
    await w.gone("POST", "/models/iris/versions/2/activate")
    await w.gone("POST", "/models/gx-model/versions/1/activate")


@recipe("GET /models/{name}/aliases", "GET /models/{name}/aliases/{alias}")
async def read_aliases(w: World) -> None:
    await w.gone("GET", "/models/gx-model/aliases")
    await w.gone("GET", "/models/gx-model/aliases/production")
    assert json_of(await w.a("GET", "/models/iris/aliases")) == {"items": []}
    assert (await w.a("GET", "/models/iris/aliases/production")).status_code == 404


@recipe("PUT /models/{name}/aliases/{alias}", "DELETE /models/{name}/aliases/{alias}")
async def change_aliases(w: World) -> None:
    await w.gone("PUT", "/models/gx-model/aliases/production", json={"version": 1})
    await w.gone("DELETE", "/models/gx-model/aliases/production")
    assert (await w.a("DELETE", "/models/iris/aliases/production")).status_code == 404
    # globex's iris has a version 2; acme's does not.
    theirs = await w.a("PUT", "/models/iris/aliases/production", json={"version": 2})
    assert theirs.status_code == 422, theirs.text
    rows = {"columns": IRIS_FEATURES, "rows": [[5.1, 3.5, 1.4, 0.2]]}
    by_alias = await w.a("POST", "/models/iris/predict", json={**rows, "alias": "production"})
    assert by_alias.status_code == 404
    mine = await w.a("PUT", "/models/iris/aliases/production", json={"version": 1})
    assert mine.status_code == 200, mine.text
    answer = json_of(
        await w.a("POST", "/models/iris/predict", json={**rows, "alias": "production"})
    )
    assert answer["version"] == 1
    assert (await w.a("DELETE", "/models/iris/aliases/production")).status_code == 204


@recipe("GET /models/{name}/traffic", "PUT /models/{name}/traffic", "DELETE /models/{name}/traffic")
async def traffic(w: World) -> None:
    split = {"split": [{"version": 1, "weight": 100}]}
    await w.gone("GET", "/models/gx-model/traffic")
    await w.gone("PUT", "/models/gx-model/traffic", json=split)
    await w.gone("DELETE", "/models/gx-model/traffic")
    own = json_of(await w.a("GET", "/models/iris/traffic"))
    assert (own["default"], own["split"]) == (True, [{"version": 1, "weight": 100}])
    theirs = {"split": [{"version": 1, "weight": 50}, {"version": 2, "weight": 50}]}
    assert (await w.a("PUT", "/models/iris/traffic", json=theirs)).status_code == 422
    assert (await w.a("PUT", "/models/iris/traffic", json=split)).status_code == 200
    assert (await w.a("DELETE", "/models/iris/traffic")).status_code == 204


@recipe("POST /datasets")
async def create_dataset(w: World) -> None:
    created = await w.a("POST", "/datasets", json={"name": "gx-spare-data", "data": staff(A)})
    assert created.status_code == 201, created.text
    assert json_of(created)["tenant"] == A
    csv = b"id,note\n1,acme\n"
    made = await w.a(
        "POST",
        "/datasets",
        params={"name": "gx-spare-csv"},
        content=csv,
        headers={"content-type": "text/csv"},
    )
    assert made.status_code == 201, made.text
    again = await w.a("POST", "/datasets", json={"name": "staff", "data": staff(A)})
    assert again.status_code == 409, again.text


@recipe("GET /datasets")
async def list_datasets(w: World) -> None:
    page = json_of(await w.a("GET", "/datasets"))
    mine = await w.raw.fetch("SELECT name FROM dataset_catalogue WHERE tenant = $1", A)
    assert sorted(d["name"] for d in page["items"]) == sorted(r["name"] for r in mine)
    assert page["total"] == len(mine)
    await nothing_of_theirs(w, "/datasets", "name = 'gx-data'")


@recipe("GET /datasets/{name}")
async def get_dataset(w: World) -> None:
    await w.gone("GET", "/datasets/gx-data")
    await w.gone("GET", "/datasets/gx-scored")
    assert json_of(await w.a("GET", "/datasets/staff"))["title"] == "acme iris"


@recipe("PATCH /datasets/{name}")
async def patch_dataset(w: World) -> None:
    await w.gone("PATCH", "/datasets/gx-data", json={"title": "acme's now"})


@recipe("DELETE /datasets/{name}")
async def delete_dataset(w: World) -> None:
    await w.gone("DELETE", "/datasets/gx-data")


@recipe("GET /datasets/{name}/rows")
async def query_rows(w: World) -> None:
    await w.gone("GET", "/datasets/gx-data/rows")
    await w.gone("GET", "/datasets/gx-data/rows", headers={"accept": "text/csv"})
    await w.gone(
        "GET",
        "/datasets/gx-data/rows",
        params={"group_by": "note", "aggregate": "id", "aggregate_func": "count"},
    )
    page = json_of(await w.a("GET", "/datasets/staff/rows", params={"limit": 1000}))
    assert len(page["items"]) == 150 and all(r["note"].startswith(A) for r in page["items"])


@recipe("POST /datasets/{name}/rows")
async def append_rows(w: World) -> None:
    await w.gone("POST", "/datasets/gx-data/rows", json={"data": staff(A)[:2]})
    csv = b"id,note\n1000,acme\n"
    await w.gone(
        "POST", "/datasets/gx-data/rows", content=csv, headers={"content-type": "text/csv"}
    )


@recipe("DELETE /datasets/{name}/rows")
async def delete_rows(w: World) -> None:
    await w.gone("DELETE", "/datasets/gx-data/rows", params={"where": "id >= 0"})


@recipe("POST /models/{name}/batch-predictions")
async def batch_predictions(w: World) -> None:
    before = await snapshot(w.raw, A)
    theirs = {"dataset": {"name": "gx-data"}, "output_dataset": "mine"}
    response = await w.a("POST", "/models/iris/batch-predictions", json=theirs)
    assert response.status_code in (404, 422), response.text
    mine = {"dataset": {"name": "staff"}, "output_dataset": "mine"}
    await w.gone("POST", "/models/gx-model/batch-predictions", json=mine)
    assert await snapshot(w.raw, A) == before
    # An output name globex has taken is free for acme.
    free = {"dataset": {"name": "staff", "select": ["id"]}, "output_dataset": "gx-scored"}
    response = await w.a("POST", "/models/iris/batch-predictions", json=free)
    assert response.status_code == 202, response.text


@recipe("GET /audit")
async def audit(w: World) -> None:
    page = json_of(await w.a("GET", "/audit", params={"limit": 1000}))
    mine = await w.raw.fetchval("SELECT count(*) FROM audit_log WHERE tenant = $1", A)
    assert page["items"] and {e["tenant"] for e in page["items"]} == {A}
    assert page["total"] == mine
    await nothing_of_theirs(w, "/audit", "actor = 'bob'", "resource = 'models/gx-model'")


@recipe("POST /webhooks")
async def create_webhook(w: World) -> None:
    # The URL globex uses is free for acme too, and the webhook is acme's own.
    hook = {"url": GX_RECEIVER.replace("globex", "acme"), "events": ["dataset.deleted"]}
    created = await w.a("POST", "/webhooks", json=hook)
    assert created.status_code == 201, created.text
    assert json_of(created)["tenant"] == A


@recipe("GET /webhooks")
async def list_webhooks(w: World) -> None:
    page = json_of(await w.a("GET", "/webhooks"))
    assert page["total"] == await w.count("webhooks") == len(page["items"])
    assert {h["tenant"] for h in page["items"]} <= {A}


@recipe("GET /webhooks/{webhook_id}", "GET /webhooks/{webhook_id}/deliveries")
async def read_webhooks(w: World) -> None:
    await w.gone("GET", f"/webhooks/{w.b_webhook}")
    await w.gone("GET", f"/webhooks/{w.b_webhook}/deliveries")


@recipe("DELETE /webhooks/{webhook_id}")
async def delete_webhook(w: World) -> None:
    await w.gone("DELETE", f"/webhooks/{w.b_webhook}")


def test_every_route_in_the_route_table_has_a_cross_tenant_recipe() -> None:
    routes = {(op.method, op.path) for op in OPERATIONS}
    assert sorted(routes - set(RECIPES)) == [], "add a recipe for each new route"
    assert sorted(set(RECIPES) - routes) == [], "a recipe names a route that is gone"


async def test_no_route_lets_one_tenant_reach_anothers_resources(world: World) -> None:
    before = await snapshot(world.raw, B)
    assert before["model_versions"] and before["jobs"] and len(before["dataset_catalogue"]) == 4
    failures = []
    for op in OPERATIONS:
        try:
            await RECIPES[op.method, op.path](world)
        except AssertionError as exc:
            failures.append(f"{op.method} {op.path}: {exc}")
    assert failures == []
    assert await snapshot(world.raw, B) == before


async def test_one_model_name_predicts_with_each_tenants_own_model(world: World) -> None:
    rows = {"columns": IRIS_FEATURES, "rows": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}
    answers = []
    for tenant in (A, B, A, B):  # alternating, so a cache keyed by name alone would show it
        response = await world.client.post(
            "/models/iris/predict", json=rows, headers=world.headers[tenant]
        )
        assert response.status_code == 200, response.text
        answers.append(json_of(response))
    assert answers[0] == answers[2] and answers[1] == answers[3]
    assert (answers[0]["version"], answers[1]["version"]) == (1, 2)
    assert answers[0]["predictions"] == ["setosa", "virginica"]
    assert answers[1]["predictions"] == ["globex-setosa", "globex-virginica"]
    # globex's changes to its `iris` reach globex's cached model only.
    await world.b("POST", "/models/iris/versions/1/activate")
    again = json_of(await world.b("POST", "/models/iris/predict", json=rows))
    assert again["version"] == 1 and all(p.startswith(B) for p in again["predictions"])
    await world.b("DELETE", "/models/iris")
    gone = await world.client.post("/models/iris/predict", json=rows, headers=world.headers[B])
    assert gone.status_code == 404
    assert json_of(await world.a("POST", "/models/iris/predict", json=rows)) == answers[0]


async def test_one_caller_name_and_idempotency_key_in_two_tenants_are_two_requests(
    client_factory: ClientFactory, settings: Settings, tmp_path: Path
) -> None:
    client, tenant_headers = await tenant_app(client_factory, settings, tmp_path)
    body = {"data": records(A)}
    jobs = {}
    for tenant in (B, A):
        headers = tenant_headers(tenant, "carol")
        model = {"name": "iris", "model_type": LOGREG, "target": "species"}
        assert (await client.post("/models", json=model, headers=headers)).status_code == 201
        response = await client.post(
            "/models/iris/train", json=body, headers={**headers, "Idempotency-Key": "nightly"}
        )
        assert response.status_code == 202, response.text
        assert "idempotent-replayed" not in response.headers
        jobs[tenant] = json_of(response)
    assert jobs[A]["id"] != jobs[B]["id"] and jobs[A]["tenant"] == A


async def test_a_batch_output_name_another_tenant_has_taken_is_free(
    world: World, run_worker: Worker
) -> None:
    await world.b("POST", f"/jobs/{world.b_queued_job}/cancel")  # the worker runs acme's only
    theirs = await snapshot(world.raw, B)
    body = {"dataset": {"name": "staff", "select": ["id"]}, "output_dataset": "gx-scored"}
    job = json_of(await world.a("POST", "/models/iris/batch-predictions", json=body))
    await run_worker()
    done = json_of(await world.a("GET", f"/jobs/{job['id']}"))
    assert done["status"] == "succeeded", done
    assert done["result"] == {"dataset": "gx-scored", "rows": 150}
    scored = json_of(await world.a("GET", "/datasets/gx-scored/rows", params={"limit": 1000}))
    assert {r["prediction"] for r in scored["items"]} <= SPECIES
    bs = json_of(await world.b("GET", "/datasets/gx-scored/rows", params={"limit": 1000}))
    assert {r["prediction"].split("-")[0] for r in bs["items"]} == {B}
    assert await snapshot(world.raw, B) == theirs
