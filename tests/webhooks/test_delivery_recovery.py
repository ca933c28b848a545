"""A worker process killed while an attempt is in flight loses nothing: the delivery's lease
runs out and another worker process makes it again (at least once), with PostgreSQL alone
holding the delivery's state."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from standardwebhooks import Webhook

from service.settings import Settings
from tests.factories import wait_until
from tests.processes import WorkerProcess
from tests.webhooks.receiver import (
    Receiver,
    add_webhook,
    attempt_rows,
    delivery_rows,
    write_event,
)

pytestmark = pytest.mark.anyio

# The attempt may take far longer than the lease: the first worker is killed while it waits.
WEBHOOKS: dict[str, object] = {
    "allow_private": "true",
    "lease_seconds": 2,
    "attempt_timeout_seconds": 60,
    "poll_seconds": 0.2,
}


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    held = await Receiver(hold_first=True).start()
    yield held
    await held.stop()


async def test_a_delivery_cut_short_by_a_killed_worker_is_made_by_another(
    raw: asyncpg.Connection,
    settings: Settings,
    receiver: Receiver,
    workers: list[WorkerProcess],
) -> None:
    _, secret = await add_webhook(raw, settings, receiver.url, ["job.succeeded"])
    await write_event(raw, "job.succeeded", "jobs/0b5e", {"id": "0b5e", "status": "succeeded"})
    first = WorkerProcess(settings, webhooks=WEBHOOKS)
    workers.append(first)

    async def held() -> bool:
        return len(receiver.requests) == 1

    await wait_until(held, 60, "the first worker's attempt to reach the receiver")
    first.kill()
    workers.append(WorkerProcess(settings, webhooks=WEBHOOKS))

    async def delivered() -> bool:
        return [r["status"] for r in await delivery_rows(raw)] == ["delivered"]

    await wait_until(delivered, 60, "another worker to deliver once the lease ran out")
    first_try, second_try = (Webhook(secret).verify(r.body, r.headers) for r in receiver.requests)
    assert first_try == second_try
    assert receiver.requests[0].headers["webhook-id"] == receiver.requests[1].headers["webhook-id"]
    # The killed worker recorded nothing; the attempt that answered is the first on record.
    [attempt] = await attempt_rows(raw)
    assert attempt["attempt"] == 1 and attempt["status_code"] == 200
