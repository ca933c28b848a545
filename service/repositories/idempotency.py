"""The `idempotency_keys` table: the first response to a keyed request, for replays."""

from __future__ import annotations

import msgspec

from service.repositories.database import Connection


class StoredResponse(msgspec.Struct):
    request_hash: str
    status: int
    body: bytes
    location: str | None


class IdempotencyRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def lock_and_get(
        self, principal: str, key: str, method: str, path: str
    ) -> StoredResponse | None:
        """Serialises requests that share a key until the transaction ends."""
        await self.conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            "\x1f".join((principal, key, method, path)),
        )
        row = await self.conn.fetchrow(
            "SELECT request_hash, status, body, location FROM idempotency_keys"
            " WHERE principal = $1 AND key = $2 AND method = $3 AND path = $4",
            principal,
            key,
            method,
            path,
        )
        return None if row is None else msgspec.convert(dict(row), StoredResponse)

    async def store(
        self,
        principal: str,
        key: str,
        method: str,
        path: str,
        response: StoredResponse,
        model_id: int | None = None,
    ) -> None:
        """Remembers the response; a key of a model goes when the model is deleted."""
        await self.conn.execute(
            "INSERT INTO idempotency_keys (principal, key, method, path, request_hash, status,"
            " body, location, model_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            principal,
            key,
            method,
            path,
            response.request_hash,
            response.status,
            response.body,
            response.location,
            model_id,
        )

    async def purge_older_than(self, seconds: float) -> int:
        result: str = await self.conn.execute(
            "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)",
            seconds,
        )
        return int(result.split()[-1])
