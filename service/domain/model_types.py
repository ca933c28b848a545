"""Use cases of the model-type catalogue: list and read, from the synced table."""

from __future__ import annotations

from typing import Any

from service.query import Query, compile_query
from service.repositories import model_types as type_repo
from service.repositories.database import Database
from service.repositories.listing import fetch_page
from service.repositories.model_types import ModelTypeRepository
from service.schemas.base import Page
from service.schemas.model_types import ModelTypeOut


class ModelTypes:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list(self, query: Query) -> Page[dict[str, Any]]:
        compiled = compile_query(query, type_repo.SOURCE)
        async with self.db.connection() as conn:
            items, total = await fetch_page(conn, compiled)
        return Page(items=items, total=total, limit=query.limit, offset=query.offset)

    async def get(self, name: str) -> ModelTypeOut | None:
        async with self.db.connection() as conn:
            return await ModelTypeRepository(conn).get(name)
