"""The outbox: every change that is an event writes its row in its own transaction, as the API
shows the resource, in commit order per tenant; a change that rolls back writes none."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx2
import msgspec
import pytest

from service.domain.actors import Actor, act_as
from service.domain.csv_stream import SAMPLE_ROWS
from service.repositories.database import Database
from service.settings import Settings
from tests.factories import Worker, json_of, make_model, run_job, submit

pytestmark = pytest.mark.anyio

DUMMY = "sklearn.dummy.DummyClassifier"
RECORDS = [{"x": i, "y": "ab"[i % 2]} for i in range(30)]


async def events(raw: asyncpg.Connection, *types: str) -> list[dict[str, Any]]:
    rows = await raw.fetch(
        "SELECT id, event_id, tenant, type, subject, data FROM events"
        " WHERE cardinality($1::text[]) = 0 OR type = ANY($1) ORDER BY id",
        list(types),
    )
    return [{**dict(r), "data": msgspec.json.decode(r["data"])} for r in rows]


async def test_a_trained_version_and_its_job_are_events_shown_as_the_api_shows_them(
    client: httpx2.AsyncClient, raw: asyncpg.Connection, run_worker: Worker
) -> None:
    await make_model(client, "m", DUMMY, target="y")
    done = await run_job(client, run_worker, "m", "train", {"data": RECORDS})
    created, succeeded = await events(raw)
    assert (created["type"], created["subject"]) == ("version.created", "models/m/versions/1")
    assert (succeeded["type"], succeeded["subject"]) == ("job.succeeded", f"jobs/{done['id']}")
    assert created["id"] < succeeded["id"] and created["tenant"] == "default"
    assert succeeded["data"] == done  # the job exactly as GET /jobs/{id} shows it
    version = json_of(await client.get("/models/m/versions/1"))
    shown = {k: v for k, v in version.items() if k != "current"}
    assert created["data"] == {"model": "m", **shown}


async def test_cancelled_and_failed_jobs_are_events_and_running_is_not(
    client: httpx2.AsyncClient, raw: asyncpg.Connection, run_worker: Worker
) -> None:
    await make_model(client, "m", DUMMY, target="y")
    job = await submit(client, "m", "train", {"data": RECORDS})
    assert (await client.post(f"/jobs/{job['id']}/cancel")).status_code == 202
    await make_model(client, "bad", "sklearn.linear_model.LogisticRegression", target="y")
    failing = await submit(client, "bad", "train", {"data": [{"x": 1, "y": "a"}] * 30})
    await run_worker()
    found = await events(raw)
    assert [(e["type"], e["subject"]) for e in found] == [
        ("job.cancelled", f"jobs/{job['id']}"),
        ("job.failed", f"jobs/{failing['id']}"),
    ]
    assert found[1]["data"]["error"]["type"]


async def test_an_alias_move_is_an_event_with_the_version_it_left(
    client: httpx2.AsyncClient, raw: asyncpg.Connection, run_worker: Worker
) -> None:
    await make_model(client, "m", DUMMY, target="y")
    for _ in range(2):
        await run_job(client, run_worker, "m", "train", {"data": RECORDS})
    await client.put("/models/m/aliases/production", json={"version": 1})
    moved = json_of(await client.put("/models/m/aliases/production", json={"version": 2}))
    first, second = await events(raw, "alias.moved")
    assert first["data"]["previous_version"] is None
    assert second["data"] == {
        "model": "m", "alias": "production", "version": 2, "previous_version": 1,
        "updated_at": moved["updated_at"], "updated_by": moved["updated_by"],
    }  # fmt: skip


async def test_a_dataset_event_shows_its_rows_as_committed_and_its_delete_is_one_too(
    client: httpx2.AsyncClient, raw: asyncpg.Connection
) -> None:
    created = await client.post("/datasets", json={"name": "d", "data": RECORDS})
    assert created.status_code == 201
    assert (await client.delete("/datasets/d")).status_code == 204
    made, dropped = await events(raw)
    assert (made["type"], dropped["type"]) == ("dataset.created", "dataset.deleted")
    assert made["data"] == json_of(created)  # 30 rows, not the 0 of the row first inserted
    assert made["data"]["rows"] == 30 and dropped["data"]["name"] == "d"


async def test_a_change_that_rolls_back_writes_no_event(
    settings: Settings, raw: asyncpg.Connection, client: httpx2.AsyncClient
) -> None:
    # PostgreSQL refuses the row after the sample, after the catalogue row was inserted.
    csv = "x\n" + "1\n" * (SAMPLE_ROWS + 10) + "not a number\n"
    refused = await client.post(
        "/datasets", params={"name": "d"}, content=csv, headers={"content-type": "text/csv"}
    )
    assert refused.status_code == 422, refused.text
    db = Database(settings.database)
    await db.start()
    try:
        act_as(Actor("default", "tester", "r"))
        with pytest.raises(RuntimeError):
            async with db.transaction() as conn:
                await conn.execute(
                    "INSERT INTO dataset_catalogue (name, columns, created_by)"
                    " VALUES ('gone', '[]', 'tester')"
                )
                raise RuntimeError("roll back")
    finally:
        act_as(None)
        await db.close()
    assert await events(raw) == []


async def test_event_ids_follow_commit_order_under_concurrent_changes(
    client: httpx2.AsyncClient, raw: asyncpg.Connection, database_url: str
) -> None:
    """NOTIFY arrives in commit order; the ids it carries must rise with it."""
    heard: list[int] = []
    listener = await asyncpg.connect(database_url)
    await listener.add_listener(
        "events", lambda *args: heard.append(int(str(args[3]).split("/")[1]))
    )
    try:
        creates = [
            client.post("/datasets", json={"name": f"d{i}", "data": RECORDS[: i + 1]})
            for i in range(20)
        ]
        assert {r.status_code for r in await asyncio.gather(*creates)} == {201}
        for _ in range(100):
            if len(heard) == 20:
                break
            await asyncio.sleep(0.05)
    finally:
        await listener.close()
    assert len(heard) == 20 and heard == sorted(heard)
    assert [e["id"] for e in await events(raw)] == heard
