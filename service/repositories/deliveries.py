"""Webhook deliveries as the worker sees them, across tenants (as `models_maintenance`): claiming
due ones under a lease, recording attempts, and hearing `NOTIFY webhook_deliveries`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Literal

import asyncpg
import msgspec

from service.repositories.notifications import Listening
from service.repositories.notifications import listen_forever as keep_listening
from service.settings import DatabaseSettings

CHANNEL = "webhook_deliveries"


class DueDelivery(msgspec.Struct, frozen=True):
    """A claimed delivery with what its attempt needs: the receiver, its sealed secret, and
    the event. `lease_until` is the claim: only the holder of that exact lease may finish it."""

    id: int
    tenant: str
    webhook_id: uuid.UUID
    url: str
    secret: bytes
    secret_key_id: str
    attempts: int  # made before this one
    created_at: datetime
    lease_until: datetime
    event_id: uuid.UUID
    type: str
    at: datetime
    timestamp: str  # `at` in the API's format
    data: str  # the event's JSON as stored


class Attempt(msgspec.Struct, frozen=True):
    """One attempt and what it leaves the delivery as."""

    at: datetime
    status: Literal["pending", "delivered", "failed"]
    status_code: int | None
    error: str | None
    duration_ms: float
    next_attempt_at: datetime | None  # set when status is pending


# Ranked per webhook first, so that one webhook's backlog cannot take every slot; rows are then
# locked with SKIP LOCKED and their due-ness checked again under the lock, since another worker
# may have leased them between the ranking and the lock.
_CLAIM = """
WITH ranked AS (
    SELECT d.id, d.webhook_id, d.next_attempt_at,
           row_number() OVER (PARTITION BY d.webhook_id ORDER BY d.next_attempt_at, d.id) AS rank
    FROM webhook_deliveries d
    WHERE d.status = 'pending' AND d.next_attempt_at <= now()
      AND (d.lease_until IS NULL OR d.lease_until < now())
), eligible AS (
    SELECT r.id FROM ranked r
    LEFT JOIN unnest($3::uuid[], $4::int[]) AS busy (webhook_id, n) USING (webhook_id)
    WHERE r.rank <= $2 - coalesce(busy.n, 0)
    ORDER BY r.next_attempt_at, r.id
    LIMIT $1
), locked AS (
    SELECT d.id FROM webhook_deliveries d
    WHERE d.id IN (SELECT id FROM eligible) AND d.status = 'pending'
      AND d.next_attempt_at <= now() AND (d.lease_until IS NULL OR d.lease_until < now())
    FOR UPDATE SKIP LOCKED
)
UPDATE webhook_deliveries d
SET lease_until = now() + make_interval(secs => $5)
FROM locked, events e, webhooks w
WHERE d.id = locked.id AND e.id = d.event AND w.id = d.webhook_id
RETURNING d.id, d.tenant, d.webhook_id, w.url, w.secret, w.secret_key_id, d.attempts,
          d.created_at, d.lease_until, e.event_id, e.type, e.at, api_time(e.at) AS timestamp,
          e.data::text AS data
"""

_FINISH = """
UPDATE webhook_deliveries
SET attempts = attempts + 1, status = $3, next_attempt_at = coalesce($4, next_attempt_at),
    lease_until = NULL, finished_at = CASE WHEN $3 = 'pending' THEN NULL ELSE now() END
WHERE id = $1 AND lease_until = $2
"""

_RECORD = """
INSERT INTO webhook_attempts
    (tenant, delivery_id, webhook_id, attempt, at, status_code, error, duration_ms,
     next_attempt_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
"""


class DeliveryRepository:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def claim(
        self, limit: int, per_webhook: int, busy: Mapping[uuid.UUID, int], lease_seconds: float
    ) -> list[DueDelivery]:
        """Up to `limit` due deliveries, at most `per_webhook` per webhook counting the `busy`
        ones already in flight, leased for `lease_seconds`."""
        rows = await self.conn.fetch(
            _CLAIM, limit, per_webhook, list(busy), list(busy.values()), lease_seconds
        )
        return [DueDelivery(**dict(row)) for row in rows]

    async def finish(self, due: DueDelivery, attempt: Attempt) -> bool:
        """Records the attempt and updates the delivery, if `due`'s lease still holds it."""
        status = await self.conn.execute(
            _FINISH, due.id, due.lease_until, attempt.status, attempt.next_attempt_at
        )
        if status != "UPDATE 1":
            return False
        await self.conn.execute(
            _RECORD,
            due.tenant,
            due.id,
            due.webhook_id,
            due.attempts + 1,
            attempt.at,
            attempt.status_code,
            attempt.error,
            attempt.duration_ms,
            attempt.next_attempt_at,
        )
        return True


async def listen_forever(settings: DatabaseSettings, on_wake: Callable[[], None]) -> None:
    """Calls `on_wake` for every `NOTIFY webhook_deliveries`, and after every (re)connect, since
    notifications sent while disconnected are lost; reconnects until cancelled."""

    async def open_session() -> Listening:
        conn = await asyncpg.connect(settings.url, timeout=settings.connect_timeout)
        session = Listening(conn)
        try:
            session.notice_loss()
            await conn.add_listener(CHANNEL, lambda *_: on_wake())
        except BaseException:
            await session.close()
            raise
        return session

    await keep_listening(open_session, asyncio.Event(), on_wake, "webhook delivery listener")


async def purge_events(conn: asyncpg.Connection, older_than_seconds: float) -> int:
    """Drops events older than that with no delivery still pending, their finished deliveries
    and attempts with them; returns how many events went."""
    deleted: int = await conn.fetchval(
        """
        WITH gone AS (
            DELETE FROM events e
            WHERE e.at < now() - make_interval(secs => $1)
              AND NOT EXISTS (SELECT FROM webhook_deliveries d
                              WHERE d.event = e.id AND d.status = 'pending')
            RETURNING 1
        )
        SELECT count(*) FROM gone
        """,
        older_than_seconds,
    )
    return deleted
