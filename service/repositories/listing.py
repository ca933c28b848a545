"""Runs a compiled list query: one page of rows plus the total count."""

from __future__ import annotations

from typing import Any

from service.query import Compiled
from service.repositories.database import Connection


async def fetch_page(conn: Connection, compiled: Compiled) -> tuple[list[dict[str, Any]], int]:
    rows = await conn.fetch(compiled.sql, *compiled.args)
    total = await conn.fetchval(compiled.count_sql, *compiled.args)
    return [dict(r) for r in rows], int(total)
