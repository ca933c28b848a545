"""Runs a compiled list query: one page of rows plus the total count."""

from __future__ import annotations

from typing import Any

from service.query import Compiled, Query, Source, compile_query
from service.repositories.database import Connection, Database
from service.schemas.base import Page


async def fetch_page(conn: Connection, compiled: Compiled) -> tuple[list[dict[str, Any]], int]:
    rows = await conn.fetch(compiled.sql, *compiled.args)
    total = await conn.fetchval(compiled.count_sql, *compiled.args)
    return [dict(r) for r in rows], int(total)


async def list_page(db: Database, query: Query, source: Source) -> Page[dict[str, Any]]:
    """The page of `source` that `query` asks for: every list endpoint's use case."""
    compiled = compile_query(query, source)
    async with db.connection() as conn:
        items, total = await fetch_page(conn, compiled)
    return Page(items=items, total=total, limit=query.limit, offset=query.offset)
