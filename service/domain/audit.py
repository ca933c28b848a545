"""Use case of the audit trail: list the caller's tenant's entries.

Entries are written by PostgreSQL triggers in the transaction of each change (migration 0010),
so nothing here writes them, and row-level security keeps other tenants' entries out of sight.
"""

from __future__ import annotations

from typing import Any

import msgspec

from service.query import Query
from service.repositories import audit as audit_repo
from service.repositories.database import Database
from service.repositories.listing import list_page
from service.schemas.base import Page


class Audit:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list(self, query: Query) -> Page[dict[str, Any]]:
        if not query.order_by and not query.grouped:
            query = msgspec.structs.replace(query, order_by=list(audit_repo.NEWEST_FIRST))
        return await list_page(self.db, query, audit_repo.SOURCE)
