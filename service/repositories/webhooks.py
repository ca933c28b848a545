"""The `webhooks` table and the read side of `webhook_attempts` (migration 0015)."""

from __future__ import annotations

import uuid

import msgspec

from service.repositories.database import Connection
from service.schemas.webhooks import DeliveryAttempt, WebhookOut

_FIELDS = "id, url, events, description, created_by, created_at, tenant"


class NewWebhook(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    url: str
    events: list[str]
    description: str | None
    secret: bytes  # sealed: see service/webhooks/secrets.py
    secret_key_id: str


class WebhookRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def lock_tenant(self) -> None:
        """Serializes the transaction's tenant's registrations, so a count read after it stays
        true until the commit (concurrent creates cannot pass the cap together)."""
        await self.conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext('models-service:webhooks'),"
            " hashtext(current_setting('app.tenant')))"
        )

    async def count(self) -> int:
        return int(await self.conn.fetchval("SELECT count(*) FROM webhooks"))

    async def insert(self, new: NewWebhook) -> WebhookOut:
        row = await self.conn.fetchrow(
            f"""
            INSERT INTO webhooks (id, url, events, description, secret, secret_key_id)
            VALUES ($1, $2, $3, $4, $5, $6)
            RETURNING {_FIELDS}
            """,
            new.id,
            new.url,
            new.events,
            new.description,
            new.secret,
            new.secret_key_id,
        )
        return msgspec.convert(dict(row), WebhookOut)

    async def page(self, limit: int, offset: int) -> tuple[list[WebhookOut], int]:
        rows = await self.conn.fetch(
            f"SELECT {_FIELDS} FROM webhooks ORDER BY created_at, id LIMIT $1 OFFSET $2",
            limit,
            offset,
        )
        total = await self.conn.fetchval("SELECT count(*) FROM webhooks")
        return [msgspec.convert(dict(r), WebhookOut) for r in rows], int(total)

    async def get(self, webhook_id: uuid.UUID) -> WebhookOut | None:
        row = await self.conn.fetchrow(f"SELECT {_FIELDS} FROM webhooks WHERE id = $1", webhook_id)
        return None if row is None else msgspec.convert(dict(row), WebhookOut)

    async def delete(self, webhook_id: uuid.UUID) -> bool:
        deleted = await self.conn.fetchval(
            "DELETE FROM webhooks WHERE id = $1 RETURNING 1", webhook_id
        )
        return deleted is not None

    async def attempts(
        self, webhook_id: uuid.UUID, limit: int, offset: int
    ) -> tuple[list[DeliveryAttempt], int]:
        rows = await self.conn.fetch(
            """
            SELECT e.event_id, e.type, a.attempt, a.at, a.status_code, a.error, a.duration_ms,
                   a.next_attempt_at, d.status
            FROM webhook_attempts a
            JOIN webhook_deliveries d ON d.id = a.delivery_id
            JOIN events e ON e.id = d.event
            WHERE a.webhook_id = $1
            ORDER BY a.id DESC
            LIMIT $2 OFFSET $3
            """,
            webhook_id,
            limit,
            offset,
        )
        total = await self.conn.fetchval(
            "SELECT count(*) FROM webhook_attempts WHERE webhook_id = $1", webhook_id
        )
        return [msgspec.convert(dict(r), DeliveryAttempt) for r in rows], int(total)
