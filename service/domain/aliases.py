"""Use cases of aliases: names for versions ("production") that deploy pipelines move.

An alias moves in one transaction under the model's row lock, so it never names a version the
model lacks, and concurrent moves with `If-Match` give one winner. Every api process hears of
the move at the commit (the same notification as an activation) and serves the new version at
its next prediction. The audit entry is written by the table's trigger (migration 0014); an
event for the move belongs in this same transaction.
"""

from __future__ import annotations

import re

from service.domain.errors import Conflict, FieldError, InvalidInput, NotFound
from service.domain.models import load_row, lock_model
from service.domain.preconditions import IfMatch, check, etag
from service.repositories.database import Database
from service.repositories.models import ModelRepository
from service.repositories.registry import AliasRepository, AliasRow
from service.repositories.versions import VersionRepository
from service.schemas.registry import ALIAS_PATTERN, AliasOut

_ALIAS = re.compile(ALIAS_PATTERN)
MAX_ALIASES = 100
"""Aliases of one model: each is read with the model's routing on every api replica."""


def is_alias_name(value: str) -> bool:
    return _ALIAS.fullmatch(value) is not None


class Aliases:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list(self, name: str) -> list[AliasOut]:
        async with self.db.connection() as conn:
            model = await load_row(conn, name)
            return [_out(row) for row in await AliasRepository(conn).list(model.id)]

    async def get(self, name: str, alias: str) -> AliasOut:
        async with self.db.connection() as conn:
            model = await load_row(conn, name)
            row = await AliasRepository(conn).get(model.id, alias)
        if row is None:
            raise _no_alias(name, alias)
        return _out(row)

    async def put(
        self, name: str, alias: str, version: int, if_match: IfMatch | None = None
    ) -> AliasOut:
        if not is_alias_name(alias):
            raise InvalidInput(
                f"'{alias[:100]}' is not an alias name",
                [FieldError("alias", "lower-case letters, digits, _ and -; starts with a letter")],
            )
        async with self.db.transaction() as conn:
            model_id = await lock_model(conn, name, None)
            repo = AliasRepository(conn)
            existing = await repo.get(model_id, alias)
            check(if_match, _what(name, alias), existing.revision if existing else None)
            if existing is None and await repo.count(model_id) >= MAX_ALIASES:
                raise Conflict(
                    f"model '{name}' already has {MAX_ALIASES} aliases, the most it may have;"
                    " delete one first"
                )
            if await VersionRepository(conn).missing(model_id, [version]):
                raise InvalidInput(
                    f"model '{name}' has no version {version}",
                    [FieldError("$.version", f"no version {version}")],
                )
            row = await repo.put(model_id, alias, version)
            await ModelRepository(conn).notify_changed(name)
        return _out(row)

    async def delete(self, name: str, alias: str, if_match: IfMatch | None = None) -> None:
        async with self.db.transaction() as conn:
            model_id = await lock_model(conn, name, None)
            repo = AliasRepository(conn)
            existing = await repo.get(model_id, alias)
            check(if_match, _what(name, alias), existing.revision if existing else None)
            if existing is None:
                raise _no_alias(name, alias)
            await repo.delete(model_id, alias)
            await ModelRepository(conn).notify_changed(name)


def _what(name: str, alias: str) -> str:
    return f"alias '{alias}' of model '{name}'"


def _no_alias(name: str, alias: str) -> NotFound:
    return NotFound(f"model '{name}' has no alias '{alias[:100]}'")


def _out(row: AliasRow) -> AliasOut:
    return AliasOut(
        alias=row.alias,
        version=row.version,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
        etag=etag(row.revision),
    )
