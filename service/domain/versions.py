"""Use cases of versions: list, read, and activate one (rollback or roll forward).

A version becomes current in one place (`make_current`), in the transaction that made it
(`Fits.record`) or chose it (`activate`), and every api process hears of it at the commit.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.domain.errors import NotFound
from service.domain.models import load_row, lock_model
from service.domain.preconditions import IfMatch
from service.repositories.database import Connection, Database
from service.repositories.models import ModelRepository
from service.repositories.versions import VersionRepository, VersionRow
from service.schemas.base import Page
from service.schemas.training import VersionOut

MAX_LISTED = 1000  # versions a description lists, newest first


@dataclass(frozen=True, slots=True)
class Description:
    """What a client needs to call a model: its versions and the current one's interface."""

    name: str
    model_type: str
    versions: list[int]  # newest first, at most MAX_LISTED
    current: VersionRow | None


class Versions:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list(self, name: str, limit: int, offset: int) -> Page[VersionOut]:
        async with self.db.connection() as conn:
            model = await load_row(conn, name)
            items, total = await VersionRepository(conn).list(model.id, limit, offset)
        return Page(items=items, total=total, limit=limit, offset=offset)

    async def get(self, name: str, version: int) -> VersionOut:
        async with self.db.connection() as conn:
            model = await load_row(conn, name)
            found = await VersionRepository(conn).get(model.id, version)
        if found is None:
            raise NotFound(f"model '{name}' has no version {version}")
        return found

    async def describe(self, name: str) -> Description:
        async with self.db.connection() as conn:
            model = await load_row(conn, name)
            repository = VersionRepository(conn)
            numbers = await repository.numbers(model.id, MAX_LISTED)
            current = None
            if model.current_version is not None:
                current = await repository.get_row(model.id, model.current_version)
        return Description(model.name, model.model_type, numbers, current)

    async def activate(self, name: str, version: int, if_match: IfMatch | None = None) -> None:
        async with self.db.transaction() as conn:
            model_id = await lock_model(conn, name, if_match)
            if await VersionRepository(conn).get_row(model_id, version) is None:
                raise NotFound(f"model '{name}' has no version {version}")
            await make_current(conn, model_id, name, version)


async def make_current(conn: Connection, model_id: int, name: str, version: int) -> None:
    """Serve `version` of the model from now on; every api process drops what it cached."""
    await ModelRepository(conn).set_current_version(model_id, version)
    await ModelRepository(conn).notify_changed(name)
