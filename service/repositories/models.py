"""The `models` table (and `models_view`, which adds capabilities and status)."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from service.domain.errors import Conflict
from service.query import Column, ColumnType, Source
from service.repositories.database import Connection
from service.schemas.models import ModelCreate


class ModelRow(msgspec.Struct, kw_only=True):
    id: int
    name: str
    model_type: str
    title: str | None
    description: str | None
    tags: list[str]
    source: str | None
    settings: dict[str, Any]
    features: list[str] | None
    target: str | None
    can_input: bool
    can_output: bool
    can_update: bool
    created_by: str
    tenant: str
    created_at: Any
    updated_at: Any
    current_version: int | None
    status: str
    job_id: Any
    revision: int


_VIEW_FIELDS = ", ".join(ModelRow.__struct_fields__)

SOURCE = Source(
    from_sql="models_view",
    columns=[
        Column("name", ColumnType.TEXT),
        Column("model_type", ColumnType.TEXT),
        Column("title", ColumnType.TEXT),
        Column("description", ColumnType.TEXT),
        Column("tags", ColumnType.TEXT_ARRAY),
        Column("source", ColumnType.TEXT),
        Column("settings", ColumnType.JSON),
        Column("features", ColumnType.TEXT_ARRAY),
        Column("target", ColumnType.TEXT),
        Column("can_input", ColumnType.BOOLEAN),
        Column("can_output", ColumnType.BOOLEAN),
        Column("can_update", ColumnType.BOOLEAN),
        Column("created_by", ColumnType.TEXT),
        Column("tenant", ColumnType.TEXT),
        Column("created_at", ColumnType.TIMESTAMP),
        Column("updated_at", ColumnType.TIMESTAMP),
        Column("current_version", ColumnType.INTEGER),
        Column("status", ColumnType.TEXT),
    ],
    tiebreak=["name"],
)


NOTIFY_CHANNEL = "model_changed"


class Current(msgspec.Struct, frozen=True):
    """What serving a model needs to know before loading a version of it: which version
    answers a prediction that names a version, an alias, or neither (the traffic split)."""

    model_id: int
    version: int | None
    can_output: bool
    model_type: str
    revision: int = 0
    aliases: dict[str, int] = msgspec.field(default_factory=dict)
    split: tuple[tuple[int, int], ...] = ()  # (version, weight); empty: the current version
    shadow: tuple[int, ...] = ()
    traffic_revision: int | None = None


class ModelRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def insert(self, body: ModelCreate, created_by: str) -> int:
        try:
            model_id: int = await self.conn.fetchval(
                """
                INSERT INTO models (name, model_type, title, description, tags, source, settings,
                                    features, target, created_by)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                RETURNING id
                """,
                body.name,
                body.model_type,
                body.title,
                body.description,
                body.tags,
                body.source,
                body.settings,
                body.features,
                body.target,
                created_by,
            )
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(f"model '{body.name}' already exists") from exc
        return model_id

    async def get(self, name: str) -> ModelRow | None:
        row = await self.conn.fetchrow(
            f"SELECT {_VIEW_FIELDS} FROM models_view WHERE name = $1", name
        )
        return None if row is None else msgspec.convert(dict(row), ModelRow)

    async def current(self, name: str) -> Current | None:
        row = await self.conn.fetchrow(
            """
            SELECT m.id, m.current_version, t.can_output, m.model_type, m.revision,
                   (SELECT coalesce(jsonb_object_agg(a.alias, a.version), '{}')
                    FROM model_aliases a WHERE a.model_id = m.id) AS aliases,
                   r.split, r.shadow, r.revision AS traffic_revision
            FROM models m
            JOIN model_types t ON t.name = m.model_type
            LEFT JOIN model_traffic r ON r.model_id = m.id
            WHERE m.name = $1
            """,
            name,
        )
        if row is None:
            return None
        return Current(
            row["id"],
            row["current_version"],
            row["can_output"],
            row["model_type"],
            row["revision"],
            row["aliases"],
            tuple((s["version"], s["weight"]) for s in row["split"] or ()),
            tuple(row["shadow"] or ()),
            row["traffic_revision"],
        )

    async def lock(self, name: str) -> int | None:
        """Locks the model row for the rest of the transaction; returns its id."""
        model_id: int | None = await self.conn.fetchval(
            "SELECT id FROM models WHERE name = $1 FOR UPDATE", name
        )
        return model_id

    async def lock_revision(self, name: str) -> tuple[int, int] | None:
        """Locks the model row for the rest of the transaction; returns its id and revision."""
        row = await self.conn.fetchrow(
            "SELECT id, revision FROM models WHERE name = $1 FOR UPDATE", name
        )
        return None if row is None else (row["id"], row["revision"])

    async def lock_by_id(self, model_id: int) -> int | None:
        found: int | None = await self.conn.fetchval(
            "SELECT id FROM models WHERE id = $1 FOR UPDATE", model_id
        )
        return found

    async def update_fields(self, model_id: int, fields: dict[str, Any]) -> None:
        if not fields:
            return
        allowed = {"title", "description", "tags", "source"}
        assert set(fields) <= allowed, fields
        assignments = ", ".join(f"{k} = ${i}" for i, k in enumerate(fields, start=2))
        await self.conn.execute(
            f"UPDATE models SET {assignments}, updated_at = now() WHERE id = $1",
            model_id,
            *fields.values(),
        )

    async def set_current_version(self, model_id: int, version: int) -> None:
        await self.conn.execute(
            "UPDATE models SET current_version = $2, updated_at = now() WHERE id = $1",
            model_id,
            version,
        )

    async def delete(self, model_id: int) -> None:
        await self.conn.execute("DELETE FROM models WHERE id = $1", model_id)

    async def notify_changed(self, name: str) -> None:
        """Tells every api process, at commit, to drop what it cached about this model of the
        transaction's tenant (payload `tenant/name`; neither part can hold a '/')."""
        await self.conn.execute(
            "SELECT pg_notify($1, current_setting('app.tenant') || '/' || $2)",
            NOTIFY_CHANNEL,
            name,
        )


def changed_model(payload: str) -> tuple[str, str]:
    """The (tenant, name) a `model_changed` notification is about."""
    tenant, _, name = payload.partition("/")
    return tenant, name
