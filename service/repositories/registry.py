"""The `model_aliases` and `model_traffic` tables (migration 0014)."""

from __future__ import annotations

from datetime import datetime

import msgspec

from service.repositories.database import Connection

_ACTOR = "coalesce(nullif(current_setting('app.actor', true), ''), 'system')"


class AliasRow(msgspec.Struct, frozen=True):
    alias: str
    version: int
    revision: int
    updated_at: datetime
    updated_by: str


class TrafficRow(msgspec.Struct, frozen=True):
    split: list[tuple[int, int]]  # (version, weight)
    shadow: list[int]
    revision: int
    updated_at: datetime
    updated_by: str


_ALIAS_FIELDS = "alias, version, revision, updated_at, updated_by"
_TRAFFIC_FIELDS = "split, shadow, revision, updated_at, updated_by"


class AliasRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def list(self, model_id: int) -> list[AliasRow]:
        rows = await self.conn.fetch(
            f"SELECT {_ALIAS_FIELDS} FROM model_aliases WHERE model_id = $1 ORDER BY alias",
            model_id,
        )
        return [AliasRow(**dict(r)) for r in rows]

    async def get(self, model_id: int, alias: str, lock: bool = False) -> AliasRow | None:
        row = await self.conn.fetchrow(
            f"SELECT {_ALIAS_FIELDS} FROM model_aliases WHERE model_id = $1 AND alias = $2"
            + (" FOR UPDATE" if lock else ""),
            model_id,
            alias,
        )
        return None if row is None else AliasRow(**dict(row))

    async def count(self, model_id: int) -> int:
        found: int = await self.conn.fetchval(
            "SELECT count(*) FROM model_aliases WHERE model_id = $1", model_id
        )
        return found

    async def put(self, model_id: int, alias: str, version: int) -> AliasRow:
        row = await self.conn.fetchrow(
            f"""
            INSERT INTO model_aliases (model_id, alias, version) VALUES ($1, $2, $3)
            ON CONFLICT (model_id, alias) DO UPDATE
                SET version = EXCLUDED.version, updated_at = now(), updated_by = {_ACTOR}
            RETURNING {_ALIAS_FIELDS}
            """,
            model_id,
            alias,
            version,
        )
        assert row is not None
        return AliasRow(**dict(row))

    async def delete(self, model_id: int, alias: str) -> bool:
        deleted = await self.conn.fetchval(
            "DELETE FROM model_aliases WHERE model_id = $1 AND alias = $2 RETURNING 1",
            model_id,
            alias,
        )
        return deleted is not None


class TrafficRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def get(self, model_id: int) -> TrafficRow | None:
        row = await self.conn.fetchrow(
            f"SELECT {_TRAFFIC_FIELDS} FROM model_traffic WHERE model_id = $1", model_id
        )
        return None if row is None else _traffic(row)

    async def put(
        self, model_id: int, split: list[tuple[int, int]], shadow: list[int]
    ) -> TrafficRow:
        row = await self.conn.fetchrow(
            f"""
            INSERT INTO model_traffic (model_id, split, shadow) VALUES ($1, $2, $3)
            ON CONFLICT (model_id) DO UPDATE
                SET split = EXCLUDED.split, shadow = EXCLUDED.shadow, updated_at = now(),
                    updated_by = {_ACTOR}
            RETURNING {_TRAFFIC_FIELDS}
            """,
            model_id,
            [{"version": v, "weight": w} for v, w in split],
            shadow,
        )
        assert row is not None
        return _traffic(row)

    async def delete(self, model_id: int) -> bool:
        deleted = await self.conn.fetchval(
            "DELETE FROM model_traffic WHERE model_id = $1 RETURNING 1", model_id
        )
        return deleted is not None


def _traffic(row: object) -> TrafficRow:
    fields = dict(row)  # type: ignore[call-overload]
    fields["split"] = [(s["version"], s["weight"]) for s in fields["split"]]
    fields["shadow"] = list(fields["shadow"])
    return TrafficRow(**fields)
