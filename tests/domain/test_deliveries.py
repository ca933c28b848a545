"""Claiming deliveries: at most the limit, at most a cap per webhook counting those in flight,
never one delivery to two claimants, again once a lease runs out; and an attempt is recorded
only by the holder of the delivery's current lease."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from service.domain.deliveries import Attempt, Deliveries, DueDelivery
from service.repositories.database import Database
from service.settings import Settings
from tests.factories import wait_until
from tests.webhooks.receiver import add_webhook, attempt_rows, delivery_rows, write_event

pytestmark = pytest.mark.anyio

LEASE = 60.0
URL = "http://receiver.invalid/hook"


async def two_webhooks(raw: asyncpg.Connection, settings: Settings) -> tuple[uuid.UUID, uuid.UUID]:
    """Webhook `a` with five due deliveries, `b` with two."""
    a, _ = await add_webhook(raw, settings, URL, ["job.failed"])
    b, _ = await add_webhook(raw, settings, URL, ["job.cancelled"])
    for n in range(5):
        await write_event(raw, "job.failed", f"jobs/{n}", {"n": n})
    for n in range(2):
        await write_event(raw, "job.cancelled", f"jobs/{n}", {"n": n})
    return a, b


def per_webhook(claimed: list[DueDelivery]) -> dict[uuid.UUID, int]:
    counts: dict[uuid.UUID, int] = {}
    for due in claimed:
        counts[due.webhook_id] = counts.get(due.webhook_id, 0) + 1
    return counts


async def test_a_claim_takes_at_most_the_cap_per_webhook_and_leases_what_it_took(
    db: Database, raw: asyncpg.Connection, settings: Settings
) -> None:
    a, b = await two_webhooks(raw, settings)
    deliveries = Deliveries(db)
    claimed = await deliveries.claim(10, 2, {}, LEASE)
    assert per_webhook(claimed) == {a: 2, b: 2}
    later = await deliveries.claim(10, 2, {}, LEASE)
    assert per_webhook(later) == {a: 2}  # the leased ones are not due; a's next two are
    assert {d.id for d in claimed}.isdisjoint({d.id for d in later})


async def test_deliveries_in_flight_count_against_their_webhooks_cap(
    db: Database, raw: asyncpg.Connection, settings: Settings
) -> None:
    a, b = await two_webhooks(raw, settings)
    claimed = await Deliveries(db).claim(10, 3, {a: 2, b: 3}, LEASE)
    assert per_webhook(claimed) == {a: 1}


async def test_a_claim_takes_at_most_its_limit_oldest_first(
    db: Database, raw: asyncpg.Connection, settings: Settings
) -> None:
    await two_webhooks(raw, settings)
    claimed = await Deliveries(db).claim(3, 10, {}, LEASE)
    assert [d.id for d in claimed] == [r["id"] for r in await delivery_rows(raw)][:3]


async def test_claims_at_the_same_time_never_share_a_delivery(
    db: Database, raw: asyncpg.Connection, settings: Settings
) -> None:
    await two_webhooks(raw, settings)
    deliveries = Deliveries(db)
    results = await asyncio.gather(*(deliveries.claim(10, 10, {}, LEASE) for _ in range(4)))
    ids = [d.id for claimed in results for d in claimed]
    assert len(ids) == len(set(ids))
    assert set(ids) <= {r["id"] for r in await delivery_rows(raw)}


async def test_a_claimed_delivery_carries_its_event_and_sealed_secret(
    db: Database, raw: asyncpg.Connection, settings: Settings
) -> None:
    webhook, _ = await add_webhook(raw, settings, URL, ["job.failed"], tenant="acme")
    await write_event(raw, "job.failed", "jobs/7", {"id": "7"}, tenant="acme")
    [due] = await Deliveries(db).claim(10, 10, {}, LEASE)
    event = await raw.fetchrow("SELECT event_id, at FROM events")
    assert event is not None
    assert (due.tenant, due.webhook_id, due.url, due.type) == ("acme", webhook, URL, "job.failed")
    assert (due.event_id, due.at, due.attempts) == (event["event_id"], event["at"], 0)
    assert due.data == '{"id": "7"}' and due.timestamp.endswith("Z")


async def test_only_the_holder_of_the_current_lease_records_an_attempt(
    db: Database, raw: asyncpg.Connection, settings: Settings
) -> None:
    await add_webhook(raw, settings, URL, ["job.failed"])
    await write_event(raw, "job.failed", "jobs/7", {"id": "7"})
    deliveries = Deliveries(db)
    [first] = await deliveries.claim(10, 10, {}, 0.05)
    again: list[DueDelivery] = []

    async def due_again() -> bool:
        again.extend(await deliveries.claim(10, 10, {}, LEASE))
        return bool(again)

    await wait_until(due_again, 10, "the short lease to run out")
    assert again[0].id == first.id
    attempt = Attempt(datetime.now(UTC), "delivered", 200, None, 3.0, None)
    assert not await deliveries.finish(first, attempt)
    assert await deliveries.finish(again[0], attempt)
    [row] = await delivery_rows(raw)
    assert (row["status"], row["attempts"]) == ("delivered", 1)
    assert [(a["attempt"], a["status_code"]) for a in await attempt_rows(raw)] == [(1, 200)]
