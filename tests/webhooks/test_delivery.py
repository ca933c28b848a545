"""The worker delivers events to webhooks: signed so the Standard Webhooks verifier accepts them,
retried after 5xx answers and refused connections, never for a change that rolled back, failed
at once for a receiver the address guard refuses (no request made) or once the retry window is
over, and every attempt is recorded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx2
import msgspec
import pytest
from standardwebhooks import Webhook

from service.domain.deliveries import Deliveries
from service.repositories.database import Database
from service.settings import Settings
from service.webhooks.delivery import Deliverer
from service.webhooks.secrets import SecretBox
from service.worker.metrics import WorkerMetrics
from tests.factories import LOGREG, json_of, make_model, make_settings, run_job, wait_until
from tests.iris import iris_records
from tests.webhooks.receiver import (
    Receiver,
    add_webhook,
    attempt_rows,
    delivery_rows,
    write_event,
)

pytestmark = pytest.mark.anyio

FAST = {
    "allow_private": True,
    "backoff_seconds": 0.05,
    "max_backoff_seconds": 0.2,
    "poll_seconds": 0.1,
    "lease_seconds": 10.0,
    "attempt_timeout_seconds": 5.0,
}
JOB = {"id": "0b5e", "status": "succeeded"}


@dataclass(frozen=True)
class Running:
    deliverer: Deliverer
    metrics: WorkerMetrics


StartDeliverer = Callable[..., Awaitable[Running]]


def with_webhooks(settings: Settings, **overrides: Any) -> Settings:
    return msgspec.structs.replace(
        settings, webhooks=make_settings(webhooks={**FAST, **overrides}).webhooks
    )


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return with_webhooks(settings)


@pytest.fixture
async def receivers() -> AsyncIterator[list[Receiver]]:
    started: list[Receiver] = []
    yield started
    for receiver in started:
        await receiver.stop()


@pytest.fixture
async def start_deliverer(settings: Settings) -> AsyncIterator[StartDeliverer]:
    """Starts the worker's delivery engine in this process, with `[webhooks]` overrides."""
    running: list[tuple[Database, Deliverer]] = []

    async def start(**overrides: Any) -> Running:
        configured = with_webhooks(settings, **overrides)
        db = Database(configured.database)
        await db.start()
        metrics = WorkerMetrics()
        deliverer = Deliverer(
            Deliveries(db),
            configured.webhooks,
            SecretBox.from_settings(configured),
            metrics.webhook_deliveries,
            metrics.webhook_lag,
        )
        deliverer.start()
        running.append((db, deliverer))
        return Running(deliverer, metrics)

    yield start
    for db, deliverer in running:
        await deliverer.stop(5)
        await db.close()


async def settled(raw: asyncpg.Connection, count: int = 1) -> list[asyncpg.Record]:
    """Waits until `count` deliveries exist and none is pending; returns them."""

    async def done() -> bool:
        rows = await delivery_rows(raw)
        return len(rows) == count and all(r["status"] != "pending" for r in rows)

    await wait_until(done, 30, f"{count} deliveries to settle")
    return await delivery_rows(raw)


def verified(receiver: Receiver, secret: str) -> list[Any]:
    return [Webhook(secret).verify(r.body, r.headers) for r in receiver.requests]


def sample(metrics: WorkerMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_a_finished_job_is_delivered_to_its_webhook_with_a_valid_signature(
    client: httpx2.AsyncClient,
    run_worker: Callable[[], Awaitable[None]],
    raw: asyncpg.Connection,
    settings: Settings,
    receivers: list[Receiver],
    start_deliverer: StartDeliverer,
) -> None:
    receiver = await Receiver().start()
    receivers.append(receiver)
    _, secret = await add_webhook(raw, settings, receiver.url, ["job.succeeded"])
    await make_model(client, "iris", LOGREG, target="species")
    job = await run_job(client, run_worker, "iris", "train", {"data": iris_records()})
    await start_deliverer()

    [delivery] = await settled(raw)
    assert delivery["status"] == "delivered" and delivery["attempts"] == 1
    [event] = verified(receiver, secret)
    assert event["type"] == "job.succeeded" and event["tenant"] == "default"
    assert event["data"]["id"] == job["id"] and event["data"]["status"] == "succeeded"
    assert event["data"]["result"] == {"version": 1}
    assert receiver.requests[0].headers["webhook-id"] == event["id"]
    assert receiver.requests[0].target == "/hook"
    [attempt] = await attempt_rows(raw)
    assert attempt["status_code"] == 200 and attempt["error"] is None
    assert attempt["next_attempt_at"] is None


async def test_a_receiver_answering_500_is_tried_again_until_it_answers_200(
    raw: asyncpg.Connection,
    settings: Settings,
    receivers: list[Receiver],
    start_deliverer: StartDeliverer,
) -> None:
    receiver = await Receiver(statuses=[500]).start()
    receivers.append(receiver)
    _, secret = await add_webhook(raw, settings, receiver.url, ["job.failed"])
    await write_event(raw, "job.failed", "jobs/0b5e", JOB)
    metrics = (await start_deliverer()).metrics

    [delivery] = await settled(raw)
    assert delivery["status"] == "delivered" and delivery["attempts"] == 2
    first, second = verified(receiver, secret)
    assert first == second  # the same event, under the same webhook-id
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    attempts = await attempt_rows(raw)
    assert [(a["attempt"], a["status_code"]) for a in attempts] == [(1, 500), (2, 200)]
    assert attempts[0]["next_attempt_at"] is not None and attempts[1]["next_attempt_at"] is None
    assert sample(metrics, "webhook_deliveries_total", outcome="retry") == 1
    assert sample(metrics, "webhook_deliveries_total", outcome="delivered") == 1
    assert sample(metrics, "webhook_delivery_lag_seconds_count") == 1


async def test_a_receiver_that_refuses_connections_is_tried_again_once_it_listens(
    raw: asyncpg.Connection,
    settings: Settings,
    receivers: list[Receiver],
    start_deliverer: StartDeliverer,
) -> None:
    receiver = Receiver()  # not listening yet: its port refuses connections
    receivers.append(receiver)
    _, secret = await add_webhook(raw, settings, receiver.url, ["job.failed"])
    await write_event(raw, "job.failed", "jobs/0b5e", JOB)
    await start_deliverer()

    async def refused_twice() -> bool:
        return len(await attempt_rows(raw)) >= 2

    await wait_until(refused_twice, 30, "two refused attempts")
    await receiver.start()
    [delivery] = await settled(raw)
    assert delivery["status"] == "delivered"
    attempts = await attempt_rows(raw)
    assert all(a["status_code"] is None and "ConnectError" in a["error"] for a in attempts[:-1])
    assert all(a["next_attempt_at"] is not None for a in attempts[:-1])
    assert attempts[-1]["status_code"] == 200
    [event] = verified(receiver, secret)
    assert event["data"] == JOB


async def test_a_change_that_rolls_back_sends_nothing(
    raw: asyncpg.Connection,
    settings: Settings,
    receivers: list[Receiver],
    start_deliverer: StartDeliverer,
) -> None:
    receiver = await Receiver().start()
    receivers.append(receiver)
    _, secret = await add_webhook(raw, settings, receiver.url, ["dataset.created"])
    await start_deliverer()
    insert = (
        "INSERT INTO dataset_catalogue (name, columns, created_by, tenant)"
        " VALUES ($1, '[]', 'alice', 'default')"
    )
    transaction = raw.transaction()
    await transaction.start()
    await raw.execute(insert, "rolled-back")
    await transaction.rollback()
    await raw.execute(insert, "committed")  # after it, on the same path: this one is sent

    [delivery] = await settled(raw)
    assert delivery["status"] == "delivered"
    [event] = verified(receiver, secret)
    assert event["type"] == "dataset.created" and event["data"]["name"] == "committed"
    assert await raw.fetchval("SELECT count(*) FROM events") == 1


async def test_a_receiver_on_loopback_is_refused_at_delivery_without_a_request(
    raw: asyncpg.Connection,
    settings: Settings,
    receivers: list[Receiver],
    start_deliverer: StartDeliverer,
) -> None:
    receiver = await Receiver().start()
    receivers.append(receiver)
    await add_webhook(raw, settings, receiver.url, ["job.failed"])
    await write_event(raw, "job.failed", "jobs/0b5e", JOB)
    metrics = (await start_deliverer(allow_private=False)).metrics

    [delivery] = await settled(raw)
    assert delivery["status"] == "failed" and delivery["finished_at"] is not None
    [attempt] = await attempt_rows(raw)
    assert attempt["status_code"] is None and attempt["next_attempt_at"] is None
    assert "127.0.0.1" in attempt["error"] and "not a public address" in attempt["error"]
    assert receiver.requests == []
    assert sample(metrics, "webhook_deliveries_total", outcome="failed") == 1


async def test_a_redirect_is_not_followed_and_fails_the_delivery(
    raw: asyncpg.Connection,
    settings: Settings,
    receivers: list[Receiver],
    start_deliverer: StartDeliverer,
) -> None:
    receiver = await Receiver(statuses=[302]).start()
    receivers.append(receiver)
    await add_webhook(raw, settings, receiver.url, ["job.failed"])
    await write_event(raw, "job.failed", "jobs/0b5e", JOB)
    await start_deliverer()

    [delivery] = await settled(raw)
    assert delivery["status"] == "failed" and delivery["attempts"] == 1
    assert len(receiver.requests) == 1
    [attempt] = await attempt_rows(raw)
    assert attempt["status_code"] == 302 and attempt["next_attempt_at"] is None


async def test_a_delivery_fails_once_its_retry_window_is_over(
    raw: asyncpg.Connection,
    settings: Settings,
    receivers: list[Receiver],
    start_deliverer: StartDeliverer,
) -> None:
    receiver = await Receiver(statuses=[500] * 100).start()
    receivers.append(receiver)
    await add_webhook(raw, settings, receiver.url, ["job.failed"])
    await write_event(raw, "job.failed", "jobs/0b5e", JOB)
    # A window shorter than the first wait: the first 500 is also the last attempt.
    await start_deliverer(retry_hours=1 / 3600, backoff_seconds=60.0, max_backoff_seconds=60.0)

    [delivery] = await settled(raw)
    assert delivery["status"] == "failed" and delivery["attempts"] == 1
    [attempt] = await attempt_rows(raw)
    assert attempt["status_code"] == 500 and attempt["next_attempt_at"] is None
    assert len(receiver.requests) == 1


async def test_stopping_lets_an_attempt_in_flight_finish(
    raw: asyncpg.Connection,
    settings: Settings,
    receivers: list[Receiver],
    start_deliverer: StartDeliverer,
) -> None:
    receiver = await Receiver(hold_first=True).start()
    receivers.append(receiver)
    await add_webhook(raw, settings, receiver.url, ["job.failed"])
    await write_event(raw, "job.failed", "jobs/0b5e", JOB)
    running = await start_deliverer()

    async def arrived() -> bool:
        return len(receiver.requests) == 1

    await wait_until(arrived, 30, "the attempt to reach the receiver")
    stopping = asyncio.create_task(running.deliverer.stop(60))
    await asyncio.sleep(0)
    assert not stopping.done()  # the receiver has not answered yet
    receiver.release()
    await stopping
    [delivery] = await delivery_rows(raw)
    assert delivery["status"] == "delivered"
    [attempt] = await attempt_rows(raw)
    assert attempt["status_code"] == 200


async def test_a_new_delivery_is_made_when_postgresql_announces_it_without_polling(
    raw: asyncpg.Connection,
    settings: Settings,
    receivers: list[Receiver],
    start_deliverer: StartDeliverer,
) -> None:
    receiver = await Receiver().start()
    receivers.append(receiver)
    await add_webhook(raw, settings, receiver.url, ["job.failed"])
    await start_deliverer(poll_seconds=3600.0)  # only NOTIFY (or the listener's start) wakes it
    await write_event(raw, "job.failed", "jobs/0b5e", JOB)

    [delivery] = await settled(raw)
    assert delivery["status"] == "delivered" and len(receiver.requests) == 1


async def test_a_webhook_registered_through_the_api_gets_alias_and_version_events_it_can_verify(
    client: httpx2.AsyncClient,
    run_worker: Callable[[], Awaitable[None]],
    raw: asyncpg.Connection,
    receivers: list[Receiver],
    start_deliverer: StartDeliverer,
) -> None:
    """The whole path: register (the secret shown once), change things, receive, verify, and
    read the attempts back through the API."""
    receiver = await Receiver().start()
    receivers.append(receiver)
    body = {"url": receiver.url, "events": ["version.created", "alias.moved"]}
    created = await client.post("/webhooks", json=body)
    assert created.status_code == 201, created.text
    hook = json_of(created)
    await make_model(client, "iris", LOGREG, target="species")
    await run_job(client, run_worker, "iris", "train", {"data": iris_records()})
    assert (await client.put("/models/iris/aliases/production", json={"version": 1})).is_success
    await start_deliverer()

    await settled(raw, 2)
    events = verified(receiver, hook["secret"])
    assert [e["type"] for e in events] == ["version.created", "alias.moved"]
    assert events[1]["data"]["alias"] == "production" and events[1]["data"]["version"] == 1
    attempts = json_of(await client.get(f"/webhooks/{hook['id']}/deliveries"))["items"]
    assert sorted(a["type"] for a in attempts) == ["alias.moved", "version.created"]
    assert {(a["status_code"], a["status"]) for a in attempts} == {(200, "delivered")}
