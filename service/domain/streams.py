"""Use cases of Server-Sent Event streams: a job as it changes, and a tenant's events.

Each stream is an async iterator that does its checks (the caller's cap, a job of another
tenant) before its first item, so a refusal is an ordinary error response rather than a broken
stream. Between items it waits on its subscription (see `stream_hub`), never on a timer, except
to give a `HEARTBEAT` when nothing happened for `heartbeat_seconds`; when the server drains it
gives `CLOSING` and ends.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import AsyncGenerator, AsyncIterator

from service.domain.actors import Actor, current_actor
from service.domain.errors import NotFound
from service.domain.stream_hub import StreamHub, Subscription, events_key, job_key
from service.repositories.database import Database
from service.repositories.event_log import EventLog
from service.repositories.jobs import ACTIVE, JobRepository
from service.schemas.jobs import JobOut
from service.schemas.streams import StreamedEvent
from service.settings import StreamSettings


class Signal(enum.Enum):
    HEARTBEAT = "heartbeat"  # nothing happened for a while; the connection is still alive
    CLOSING = "closing"  # the server is stopping; the client should reconnect elsewhere


class Streams:
    def __init__(self, db: Database, hub: StreamHub, settings: StreamSettings) -> None:
        self.db = db
        self.hub = hub
        self.settings = settings

    async def job(self, job_id: uuid.UUID) -> AsyncGenerator[JobOut | Signal, None]:
        """The job now, then each time it changes; ends after its final state."""
        actor = _actor()
        with (
            self.hub.admitted(actor.tenant, actor.sub),
            self.hub.subscribed(job_key(actor.tenant, job_id)) as subscription,
        ):
            # Subscribed before the first read: a change committed after the read wakes us.
            job = await self._read_job(job_id)
            yield job
            while job.status in ACTIVE:
                async for signal in self._quiet(subscription):
                    yield signal
                    if signal is Signal.CLOSING:
                        return
                current = await self._find_job(job_id)
                if current is None:  # deleted with its model: nothing more will happen to it
                    return
                if current != job:
                    job = current
                    yield job

    async def events(self, after: int | None) -> AsyncGenerator[list[StreamedEvent] | Signal, None]:
        """The tenant's events after position `after` (replayed from the outbox in batches),
        then live ones; with no `after`, only events committed from now on."""
        actor = _actor()
        with (
            self.hub.admitted(actor.tenant, actor.sub),
            self.hub.subscribed(events_key(actor.tenant)) as subscription,
        ):
            if after is None:
                async with self.db.connection() as conn:
                    after = await EventLog(conn).end(actor.tenant)
            opening = True  # the first item is sent even when empty: the stream has started
            while True:
                while True:
                    batch = await self._read_events(actor.tenant, after)
                    if batch or opening:
                        yield batch
                        opening = False
                    if batch:
                        after = batch[-1].position
                    if len(batch) < self.settings.replay_batch:
                        break
                async for signal in self._quiet(subscription):
                    yield signal
                    if signal is Signal.CLOSING:
                        return

    async def _read_events(self, tenant: str, after: int) -> list[StreamedEvent]:
        """One batch past `after`: a wake-up after a burst of events costs one read per batch,
        not one per event."""
        async with self.db.connection() as conn:
            return await EventLog(conn).after(tenant, after, self.settings.replay_batch)

    async def _quiet(self, subscription: Subscription) -> AsyncIterator[Signal]:
        """Heartbeats until the subscription is woken (then it ends, and the stream reads);
        when the server drains, `CLOSING` last, after which the stream ends."""
        while not self.hub.draining.is_set():
            woken = await subscription.woken_within(self.settings.heartbeat_seconds)
            if self.hub.draining.is_set():
                break
            if woken:
                return
            yield Signal.HEARTBEAT
        yield Signal.CLOSING

    async def _find_job(self, job_id: uuid.UUID) -> JobOut | None:
        async with self.db.connection() as conn:
            return await JobRepository(conn).get(job_id)

    async def _read_job(self, job_id: uuid.UUID) -> JobOut:
        job = await self._find_job(job_id)
        if job is None:
            raise NotFound(f"job '{job_id}' does not exist")
        return job


def _actor() -> Actor:
    actor = current_actor()
    if actor is None:  # a stream is always some caller's: with no tenant it would see nothing
        raise RuntimeError("a stream needs an actor")
    return actor
