"""Reading the events outbox in stream order, for `GET /events`."""

from __future__ import annotations

import asyncpg

from service.schemas.streams import StreamedEvent

# The body is built by PostgreSQL as text, so an event's `data` is never decoded and re-encoded
# on its way to a stream; it is the body a webhook delivery carries.
_AFTER = """
    SELECT id, type, jsonb_build_object(
        'id', event_id, 'type', type, 'timestamp', api_time(at), 'tenant', tenant, 'data', data
    )::text AS body
    FROM events WHERE tenant = $1 AND id > $2 ORDER BY id LIMIT $3
"""


class EventLog:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def after(self, tenant: str, position: int, limit: int) -> list[StreamedEvent]:
        """The tenant's events past `position`, oldest first; ids are in commit order per
        tenant (migration 0015), so nothing committed later can appear below `position`."""
        rows = await self.conn.fetch(_AFTER, tenant, position, limit)
        return [StreamedEvent(row["id"], row["type"], row["body"]) for row in rows]

    async def end(self, tenant: str) -> int:
        """The tenant's latest position (0 before its first event)."""
        last = await self.conn.fetchval(
            "SELECT coalesce(max(id), 0) FROM events WHERE tenant = $1", tenant
        )
        return int(last)
