"""Keeps the database's `model_types` in step with the catalogue the code discovers."""

from __future__ import annotations

import asyncio
import logging

from service.domain.errors import QueryTimeout, Unavailable
from service.estimators.catalogue import Catalogue
from service.repositories.database import Database
from service.repositories.model_types import ModelTypeRepository

log = logging.getLogger(__name__)


async def sync_catalogue(db: Database, catalogue: Catalogue) -> None:
    """Upsert every known type (never drop and recreate: models reference them)."""
    types = catalogue.all()
    provider = {t.name: "sklearn" if t.name.startswith("sklearn.") else "plugin" for t in types}
    async with db.transaction() as conn:
        await ModelTypeRepository(conn).upsert_all(types, provider)
    log.info("model types synced", extra={"count": len(types)})


async def keep_syncing_until_done(db: Database, catalogue: Catalogue, retry_seconds: float) -> None:
    """Runs in the background at start, so the api serves probes while PostgreSQL is down."""
    while True:
        await asyncio.sleep(retry_seconds)
        try:
            await sync_catalogue(db, catalogue)
            return
        except (Unavailable, QueryTimeout):
            pass
