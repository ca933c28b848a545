"""Use cases of the model-type catalogue: list and read, from the synced table."""

from __future__ import annotations

from typing import Any

from service.estimators.model_type import ModelTypeInfo
from service.query import Query
from service.repositories import model_types as type_repo
from service.repositories.database import Database
from service.repositories.listing import list_page
from service.repositories.model_types import ModelTypeRepository
from service.schemas.base import Page


class ModelTypes:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list(self, query: Query) -> Page[dict[str, Any]]:
        return await list_page(self.db, query, type_repo.SOURCE)

    async def get(self, name: str) -> ModelTypeInfo | None:
        async with self.db.connection() as conn:
            return await ModelTypeRepository(conn).get(name)
