"""The audit trail over the real app in jwt mode: every kind of change leaves one entry with the
caller's `sub`, the request's `X-Request-ID`, the tenant and a before/after summary; the job's
work is the submitter's; `GET /audit` needs `admin`, shows one tenant only and speaks the query
language; a refused change leaves nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import msgspec
import pytest

from service.devtools.keys import DEV_AUDIENCE, DEV_ISSUER, mint_token, write_dev_jwks
from service.settings import Settings
from tests.factories import ClientFactory, Worker, auth_settings, json_of

pytestmark = pytest.mark.anyio

DUMMY = "sklearn.dummy.DummyClassifier"
RECORDS = [{"x": i, "y": "ab"[i % 2]} for i in range(10)]
IRIS = {"name": "iris", "model_type": DUMMY, "target": "y"}
Bearer = Callable[..., dict[str, str]]


@pytest.fixture
async def app(
    client_factory: ClientFactory, settings: Settings, tmp_path: Path
) -> tuple[httpx2.AsyncClient, Bearer]:
    """The app in jwt mode with the development key, and a maker of `Authorization` headers:
    `bearer(sub, *scopes, tenant=None, rid=None)` (rid: the request's `X-Request-ID`)."""
    key_file = tmp_path / "dev-jwk.json"
    auth = auth_settings(
        issuer=DEV_ISSUER,
        audience=DEV_AUDIENCE,
        jwks_url="",
        jwks_file=str(write_dev_jwks(key_file)),
        dev_key_file=str(key_file),
    )
    client = await client_factory(msgspec.structs.replace(settings, auth=auth))

    def bearer(
        sub: str, *scopes: str, tenant: str | None = None, rid: str | None = None
    ) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {mint_token(auth, sub, scopes, 600, tenant=tenant)}"}
        return headers if rid is None else {**headers, "X-Request-ID": rid}

    return client, bearer


async def trail(
    client: httpx2.AsyncClient, bearer: Bearer, tenant: str | None = None, **params: Any
) -> list[dict[str, Any]]:
    """The tenant's audit entries, oldest first unless `params` say otherwise."""
    query = {"order_by": "id", **params}
    response = await client.get(
        "/audit", params=query, headers=bearer("root", "admin", tenant=tenant)
    )
    assert response.status_code == 200, response.text
    page = json_of(response)
    assert page["total"] == len(page["items"])
    items: list[dict[str, Any]] = page["items"]
    return items


def brief(entries: list[dict[str, Any]]) -> list[tuple[str, str, str, str | None]]:
    return [(e["action"], e["resource"], e["actor"], e["request_id"]) for e in entries]


async def send(
    client: httpx2.AsyncClient,
    method: str,
    path: str,
    headers: dict[str, str],
    status: int = 200,
    **kwargs: Any,
) -> Any:
    """The response body of a request that must answer `status`."""
    response = await client.request(method, path, headers=headers, **kwargs)
    assert response.status_code == status, response.text
    return None if status == 204 else json_of(response)


async def test_model_creates_changes_and_deletes_are_audited_as_their_callers(
    app: tuple[httpx2.AsyncClient, Bearer],
) -> None:
    client, bearer = app
    model = {"name": "iris", "model_type": DUMMY, "target": "y", "title": "Iris", "tags": ["a"]}
    await send(
        client, "POST", "/models", bearer("alice", "models:write", rid="r-1"), 201, json=model
    )
    patch = {"title": "Iris v2", "tags": ["a", "b"]}
    headers = bearer("bob", "models:write", rid="r-2")
    await send(client, "PATCH", "/models/iris", headers, json=patch)
    # The same values again change nothing, so they are not an entry.
    await send(client, "PATCH", "/models/iris", headers, json=patch)
    await send(client, "DELETE", "/models/iris", bearer("carol", "models:write", rid="r-3"), 204)

    created, updated, deleted = await trail(client, bearer)
    assert brief([created, updated, deleted]) == [
        ("model.created", "models/iris", "alice", "r-1"),
        ("model.updated", "models/iris", "bob", "r-2"),
        ("model.deleted", "models/iris", "carol", "r-3"),
    ]
    assert {e["tenant"] for e in (created, updated, deleted)} == {"default"}
    assert created["before"] is None
    assert created["after"] == {
        "name": "iris",
        "model_type": DUMMY,
        "title": "Iris",
        "description": None,
        "tags": ["a"],
        "source": None,
        "target": "y",
    }
    assert updated["before"] == {"title": "Iris", "tags": ["a"]}
    assert updated["after"] == {"title": "Iris v2", "tags": ["a", "b"]}
    assert deleted["before"]["title"] == "Iris v2"
    assert deleted["before"]["current_version"] is None
    assert deleted["after"] is None


async def test_a_job_and_the_version_it_makes_are_audited_as_its_submitter(
    app: tuple[httpx2.AsyncClient, Bearer], run_worker: Worker
) -> None:
    client, bearer = app
    writer = bearer("alice", "models:write")
    await send(client, "POST", "/models", writer, 201, json=IRIS)
    for rid in ("train-1", "train-2"):
        headers = bearer("carol", "models:write", rid=rid)
        await send(client, "POST", "/models/iris/train", headers, 202, json={"data": RECORDS})
        await run_worker()
    rollback = bearer("dave", "models:write", rid="r-back")
    await send(client, "POST", "/models/iris/versions/1/activate", rollback)

    entries = await trail(client, bearer, where="action != model.created")
    reader = bearer("alice", "models:read")
    jobs = json_of(await client.get("/jobs", params={"order_by": "created_at"}, headers=reader))
    first, second = (job["id"] for job in jobs["items"])
    assert brief(entries) == [
        ("job.created", f"jobs/{first}", "carol", "train-1"),
        ("version.created", "models/iris/versions/1", "carol", "train-1"),
        ("version.activated", "models/iris/versions/1", "carol", "train-1"),
        ("job.created", f"jobs/{second}", "carol", "train-2"),
        ("version.created", "models/iris/versions/2", "carol", "train-2"),
        ("version.activated", "models/iris/versions/2", "carol", "train-2"),
        ("version.activated", "models/iris/versions/1", "dave", "r-back"),
    ]
    job_created, version_created, activated = entries[:3]
    assert job_created["after"] == {"kind": "train", "model": "iris", "status": "queued"}
    assert version_created["after"] == {
        "version": 1,
        "kind": "train",
        "parent_version": None,
        "rows": len(RECORDS),
        "job": first,
    }
    assert (activated["before"], activated["after"]) == (
        {"current_version": None},
        {"current_version": 1},
    )
    assert (entries[-1]["before"], entries[-1]["after"]) == (
        {"current_version": 2},
        {"current_version": 1},
    )


async def test_a_batch_predictions_output_dataset_is_audited_as_its_submitter(
    app: tuple[httpx2.AsyncClient, Bearer], run_worker: Worker
) -> None:
    client, bearer = app
    owner = bearer("alice", "models:write", "datasets:write")
    await send(client, "POST", "/models", owner, 201, json=IRIS)
    await send(client, "POST", "/datasets", owner, 201, json={"name": "inputs", "data": RECORDS})
    await send(client, "POST", "/models/iris/train", owner, 202, json={"data": RECORDS})
    await run_worker()
    scopes = ("models:write", "datasets:read", "datasets:write")
    body = {"dataset": {"name": "inputs"}, "output_dataset": "scored"}
    path = "/models/iris/batch-predictions"
    job = await send(client, "POST", path, bearer("carol", *scopes, rid="b-1"), 202, json=body)
    await run_worker()

    entries = await trail(client, bearer, where="request_id = b-1")
    assert brief(entries) == [
        ("job.created", f"jobs/{job['id']}", "carol", "b-1"),
        ("dataset.created", "datasets/scored", "carol", "b-1"),
    ]
    assert entries[0]["after"]["kind"] == "batch_predict"
    assert entries[1]["after"]["row_count"] == len(RECORDS)
    assert entries[1]["after"]["source"] == "/models/iris/versions/1"


async def test_cancels_are_audited_including_those_of_a_model_delete(
    app: tuple[httpx2.AsyncClient, Bearer],
) -> None:
    client, bearer = app
    writer = bearer("alice", "models:write")
    await send(client, "POST", "/models", writer, 201, json=IRIS)
    job = await send(client, "POST", "/models/iris/train", writer, 202, json={"data": RECORDS})
    canceller = bearer("bob", "models:write", rid="c-1")
    await send(client, "POST", f"/jobs/{job['id']}/cancel", canceller, 202)
    other = await send(client, "POST", "/models/iris/train", writer, 202, json={"data": RECORDS})
    await send(client, "DELETE", "/models/iris", bearer("carol", "models:write", rid="d-1"), 204)

    entries = await trail(client, bearer, where=["action IN (job.cancelled, model.deleted)"])
    assert brief(entries) == [
        ("job.cancelled", f"jobs/{job['id']}", "bob", "c-1"),
        ("job.cancelled", f"jobs/{other['id']}", "carol", "d-1"),
        ("model.deleted", "models/iris", "carol", "d-1"),
    ]
    assert (entries[0]["before"], entries[0]["after"]) == (
        {"status": "queued"},
        {"status": "cancelled"},
    )


async def test_dataset_changes_are_audited_with_row_count_deltas(
    app: tuple[httpx2.AsyncClient, Bearer],
) -> None:
    client, bearer = app

    def as_erin(rid: str) -> dict[str, str]:
        return bearer("erin", "datasets:write", rid=rid)

    body = {"name": "staff", "data": RECORDS, "tags": ["hr"]}
    await send(client, "POST", "/datasets", as_erin("d-1"), 201, json=body)
    await send(client, "PATCH", "/datasets/staff", as_erin("d-2"), json={"title": "Staff"})
    rows = {"data": RECORDS[:3]}
    await send(client, "POST", "/datasets/staff/rows", as_erin("d-3"), json=rows)
    await send(client, "DELETE", "/datasets/staff/rows", as_erin("d-4"), params={"where": "x < 2"})
    await send(client, "DELETE", "/datasets/staff", as_erin("d-5"), 204)

    entries = await trail(client, bearer)
    assert brief(entries) == [
        ("dataset.created", "datasets/staff", "erin", "d-1"),
        ("dataset.updated", "datasets/staff", "erin", "d-2"),
        ("dataset.rows_added", "datasets/staff", "erin", "d-3"),
        ("dataset.rows_deleted", "datasets/staff", "erin", "d-4"),
        ("dataset.deleted", "datasets/staff", "erin", "d-5"),
    ]
    created, updated, added, deleted_rows, dropped = entries
    assert created["after"] == {
        "name": "staff",
        "title": None,
        "description": None,
        "tags": ["hr"],
        "source": None,
        "row_count": 10,
    }
    assert (updated["before"], updated["after"]) == ({"title": None}, {"title": "Staff"})
    assert (added["before"], added["after"]) == ({"row_count": 10}, {"row_count": 13, "delta": 3})
    assert deleted_rows["after"] == {"row_count": 9, "delta": -4}
    assert dropped["before"]["row_count"] == 9
    assert dropped["after"] is None


async def test_the_audit_trail_needs_admin(app: tuple[httpx2.AsyncClient, Bearer]) -> None:
    client, bearer = app
    scopes = ("models:read", "models:write", "datasets:read", "datasets:write")
    refused = await client.get("/audit", headers=bearer("mallory", *scopes))
    assert refused.status_code == 403, refused.text
    assert json_of(refused)["missing_scopes"] == ["admin"]
    assert (await client.get("/audit")).status_code == 401


async def test_another_tenants_entries_never_show(app: tuple[httpx2.AsyncClient, Bearer]) -> None:
    client, bearer = app
    for tenant, title in (("acme", "Acme iris"), ("globex", "Globex iris")):
        model = {"name": "iris", "model_type": DUMMY, "title": title}
        headers = bearer(f"{tenant}-dev", "models:write", tenant=tenant)
        await send(client, "POST", "/models", headers, 201, json=model)

    for tenant, title in (("acme", "Acme iris"), ("globex", "Globex iris")):
        entries = await trail(client, bearer, tenant=tenant, where="resource STARTSWITH models/")
        assert [(e["tenant"], e["actor"], e["after"]["title"]) for e in entries] == [
            (tenant, f"{tenant}-dev", title)
        ]
    assert await trail(client, bearer) == []  # the default tenant made no change


async def test_the_query_language_filters_orders_and_selects(
    app: tuple[httpx2.AsyncClient, Bearer],
) -> None:
    client, bearer = app
    for i, sub in enumerate(("alice", "bob", "alice")):
        model = {"name": f"m{i}", "model_type": DUMMY}
        headers = bearer(sub, "models:write", rid=f"q-{i}")
        await send(client, "POST", "/models", headers, 201, json=model)
    await send(client, "DELETE", "/models/m1", bearer("bob", "models:write"), 204)
    admin = bearer("root", "admin")

    newest_first = json_of(await client.get("/audit", headers=admin))
    assert [e["resource"] for e in newest_first["items"]] == [
        "models/m1",
        "models/m2",
        "models/m1",
        "models/m0",
    ]
    assert newest_first["items"][0]["action"] == "model.deleted"

    by_alice = await trail(client, bearer, where="actor = alice", select=["resource", "request_id"])
    assert by_alice == [
        {"resource": "models/m0", "request_id": "q-0"},
        {"resource": "models/m2", "request_id": "q-2"},
    ]
    deletes = await trail(client, bearer, where="action = model.deleted")
    assert [e["resource"] for e in deletes] == ["models/m1"]
    one = await trail(client, bearer, where="request_id = q-1")
    assert brief(one) == [("model.created", "models/m1", "bob", "q-1")]
    paged = json_of(await client.get("/audit", params={"limit": 1, "offset": 1}, headers=admin))
    assert (paged["total"], len(paged["items"])) == (4, 1)
    assert paged["items"][0]["resource"] == "models/m2"
    since = await trail(client, bearer, where="at >= 2000-01-01T00:00:00Z")
    assert len(since) == 4

    for params in ({"where": "secret = 1"}, {"order_by": "before"}, {"where": "at = yesterday"}):
        response = await client.get("/audit", params=params, headers=admin)
        assert response.status_code == 400, (params, response.text)


async def test_one_audit_page_is_at_most_10000_entries(
    app: tuple[httpx2.AsyncClient, Bearer],
) -> None:
    # What a caller can make one request read: the list's `limit` is bounded like every list's.
    client, bearer = app
    admin = bearer("root", "admin")
    response = await client.get("/audit", params={"limit": 10_001}, headers=admin)
    assert response.status_code == 400 and "limit" in response.text
    assert (await client.get("/audit", params={"limit": 10_000}, headers=admin)).status_code == 200


async def test_a_refused_change_writes_no_entry(app: tuple[httpx2.AsyncClient, Bearer]) -> None:
    client, bearer = app
    writer = bearer("alice", "models:write", "datasets:write")
    await send(client, "POST", "/models", writer, 201, json=IRIS)
    before = await trail(client, bearer)

    bad = {"name": "iris2", "model_type": DUMMY, "features": ["y"], "target": "y"}
    refusals: list[tuple[str, str, int, dict[str, Any]]] = [
        ("POST", "/models", 409, {"json": IRIS}),
        ("POST", "/models", 422, {"json": bad}),
        ("PATCH", "/models/nope", 404, {"json": {"title": "x"}}),
        ("POST", "/models/iris/versions/1/activate", 404, {}),
        ("POST", "/models/iris/train", 422, {"json": {}}),
        ("DELETE", "/datasets/none/rows", 404, {"params": {"where": "x = 1"}}),
    ]
    for method, path, status, kwargs in refusals:
        await send(client, method, path, writer, status, **kwargs)
    refused = await client.delete("/models/iris", headers=bearer("mallory", "models:read"))
    assert refused.status_code == 403

    assert await trail(client, bearer) == before


async def test_alias_moves_and_traffic_changes_are_audited_and_a_model_delete_once(
    app: tuple[httpx2.AsyncClient, Bearer], run_worker: Worker
) -> None:
    client, bearer = app
    writer = bearer("alice", "models:write")
    await send(client, "POST", "/models", writer, 201, json=IRIS)
    for _ in range(2):
        await send(client, "POST", "/models/iris/train", writer, 202, json={"data": RECORDS})
        await run_worker()
    path = "/models/iris/aliases/production"
    await send(client, "PUT", path, bearer("bob", "models:write", rid="a-1"), json={"version": 1})
    await send(client, "PUT", path, bearer("carol", "models:write", rid="a-2"), json={"version": 2})
    await send(client, "DELETE", path, bearer("dave", "models:write", rid="a-3"), 204)
    split = {"split": [{"version": 1, "weight": 100}], "shadow": [2]}
    traffic = "/models/iris/traffic"
    await send(client, "PUT", traffic, bearer("erin", "models:write", rid="t-1"), json=split)
    await send(client, "DELETE", traffic, bearer("erin", "models:write", rid="t-2"), 204)
    # A refused move is no entry.
    refused = {"version": 9}
    await send(client, "PUT", path, bearer("bob", "models:write", rid="no"), 422, json=refused)
    await send(client, "PUT", path, bearer("alice", "models:write", rid="a-4"), json={"version": 1})
    await send(client, "PUT", traffic, bearer("alice", "models:write", rid="t-3"), json=split)
    await send(client, "DELETE", "/models/iris", bearer("zoe", "models:write", rid="gone"), 204)

    entries = await trail(
        client,
        bearer,
        where="action IN (alias.moved, alias.deleted, "
        "traffic.changed, traffic.deleted, model.deleted)",
    )
    assert brief(entries) == [
        ("alias.moved", "models/iris/aliases/production", "bob", "a-1"),
        ("alias.moved", "models/iris/aliases/production", "carol", "a-2"),
        ("alias.deleted", "models/iris/aliases/production", "dave", "a-3"),
        ("traffic.changed", "models/iris/traffic", "erin", "t-1"),
        ("traffic.deleted", "models/iris/traffic", "erin", "t-2"),
        ("alias.moved", "models/iris/aliases/production", "alice", "a-4"),
        ("traffic.changed", "models/iris/traffic", "alice", "t-3"),
        ("model.deleted", "models/iris", "zoe", "gone"),
    ]
    first, second, dropped, changed, cleared = entries[:5]
    assert (first["before"], first["after"]) == (None, {"version": 1})
    assert (second["before"], second["after"]) == ({"version": 1}, {"version": 2})
    assert (dropped["before"], dropped["after"]) == ({"version": 2}, None)
    assert changed["after"] == {"split": split["split"], "shadow": [2]}
    assert (cleared["before"], cleared["after"]) == (changed["after"], None)
