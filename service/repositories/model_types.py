"""The `model_types` table: the catalogue as the database knows it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from service.estimators.model_type import ModelTypeInfo
from service.query import Column, ColumnType, Source
from service.repositories.database import Connection

_FIELDS = list(ModelTypeInfo.__struct_fields__)

SOURCE = Source(
    from_sql="model_types",
    columns=[
        Column("name", ColumnType.TEXT),
        Column("task", ColumnType.TEXT),
        Column("description", ColumnType.TEXT),
        Column("input_description", ColumnType.TEXT),
        Column("output_description", ColumnType.TEXT),
        Column("update_description", ColumnType.TEXT),
        Column("can_input", ColumnType.BOOLEAN),
        Column("can_output", ColumnType.BOOLEAN),
        Column("can_update", ColumnType.BOOLEAN),
        Column("incremental", ColumnType.BOOLEAN),
        Column("supervised", ColumnType.BOOLEAN),
        Column("outputs", ColumnType.TEXT_ARRAY),
        Column("hyperparameters", ColumnType.JSON),
        Column("docs_url", ColumnType.TEXT),
    ],
    tiebreak=["name"],
)


class Capabilities(msgspec.Struct):
    supervised: bool
    can_input: bool
    can_update: bool
    incremental: bool


class ModelTypeRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def upsert_all(self, types: Sequence[ModelTypeInfo], provider: dict[str, str]) -> None:
        """Insert or refresh every type, in name order so that replicas never deadlock."""
        columns = [*_FIELDS, "provider"]
        placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != "name")
        await self.conn.executemany(
            f"INSERT INTO model_types ({', '.join(columns)}) VALUES ({placeholders}) "
            f"ON CONFLICT (name) DO UPDATE SET {updates}, synced_at = now()",
            [
                [*(getattr(t, f) for f in _FIELDS), provider.get(t.name, "sklearn")]
                for t in sorted(types, key=lambda t: t.name)
            ],
        )

    async def get(self, name: str) -> ModelTypeInfo | None:
        row = await self.conn.fetchrow(
            f"SELECT {', '.join(_FIELDS)} FROM model_types WHERE name = $1", name
        )
        return None if row is None else msgspec.convert(dict(row), ModelTypeInfo)

    async def capabilities(self, name: str) -> Capabilities:
        row = await self.conn.fetchrow(
            "SELECT supervised, can_input, can_update, incremental FROM model_types"
            " WHERE name = $1",
            name,
        )
        assert row is not None, "models reference model_types"
        return msgspec.convert(dict(row), Capabilities)

    async def rows(self, sql: str, args: Sequence[Any]) -> list[dict[str, Any]]:
        return [dict(r) for r in await self.conn.fetch(sql, *args)]
