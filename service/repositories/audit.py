"""The `audit_log` table, which triggers fill (migration 0010); the service only reads it."""

from __future__ import annotations

from typing import Literal

from service.query import Column, ColumnType, Source

SOURCE = Source(
    from_sql="audit_log",
    columns=[
        Column("id", ColumnType.INTEGER),
        Column("at", ColumnType.TIMESTAMP),
        Column("tenant", ColumnType.TEXT),
        Column("actor", ColumnType.TEXT),
        Column("action", ColumnType.TEXT),
        Column("resource", ColumnType.TEXT),
        Column("request_id", ColumnType.TEXT),
        Column("before", ColumnType.JSON),
        Column("after", ColumnType.JSON),
    ],
    tiebreak=["id"],
)

NEWEST_FIRST: list[tuple[str, Literal["asc", "desc"]]] = [("at", "desc"), ("id", "desc")]
"""The order of a list that names none (the index `audit_log_tenant_at` serves it)."""
