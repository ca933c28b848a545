"""Use cases of named models: create, read, list, change metadata (delete is in jobs.py,
since it cancels the model's jobs)."""

from __future__ import annotations

from typing import Any

import msgspec

from service.domain.errors import FieldError, InvalidInput, NotFound
from service.domain.preconditions import IfMatch, Tagged, check
from service.estimators.catalogue import Catalogue
from service.query import Query
from service.repositories import models as model_repo
from service.repositories.database import Connection, Database
from service.repositories.jobs import JobRepository
from service.repositories.listing import list_page
from service.repositories.models import ModelRepository, ModelRow
from service.schemas.base import Page
from service.schemas.metadata import MetadataPatch
from service.schemas.models import ModelCreate, ModelOut


class Models:
    def __init__(self, db: Database, catalogue: Catalogue) -> None:
        self.db = db
        self.catalogue = catalogue

    async def create(self, body: ModelCreate, created_by: str) -> Tagged[ModelOut]:
        model_type = self.catalogue.get(body.model_type)
        if model_type is None:
            raise InvalidInput(
                f"unknown model type '{body.model_type}'",
                [FieldError("$.model_type", "not a type listed by GET /model-types")],
            )
        self.catalogue.validate(body.model_type, body.settings)
        if body.target is not None and body.features and body.target in body.features:
            raise InvalidInput(
                "the target cannot also be a feature",
                [FieldError("$.features", f"contains the target '{body.target}'")],
            )
        if body.features and len(set(body.features)) != len(body.features):
            raise InvalidInput(
                "features repeat a column", [FieldError("$.features", "duplicate column names")]
            )
        async with self.db.transaction() as conn:
            await ModelRepository(conn).insert(body, created_by)
            return await _load(conn, body.name)

    async def get(self, name: str) -> Tagged[ModelOut]:
        async with self.db.connection() as conn:
            return await _load(conn, name)

    async def list(self, query: Query) -> Page[dict[str, Any]]:
        return await list_page(self.db, query, model_repo.SOURCE)

    async def patch(
        self, name: str, patch: MetadataPatch, if_match: IfMatch | None = None
    ) -> Tagged[ModelOut]:
        fields = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
        if fields.get("tags", ()) is None:
            fields["tags"] = []
        async with self.db.transaction() as conn:
            model_id = await lock_model(conn, name, if_match)
            await ModelRepository(conn).update_fields(model_id, fields)
            return await _load(conn, name)


def _not_found(name: str) -> NotFound:
    return NotFound(f"model '{name}' does not exist")


async def lock_model(conn: Connection, name: str, if_match: IfMatch | None) -> int:
    """Locks the model's row for the transaction, after checking `If-Match` against it; its id."""
    locked = await ModelRepository(conn).lock_revision(name)
    if locked is None:
        raise _not_found(name)
    model_id, revision = locked
    check(if_match, f"model '{name}'", revision)
    return model_id


async def load_row(conn: Connection, name: str) -> ModelRow:
    row = await ModelRepository(conn).get(name)
    if row is None:
        raise _not_found(name)
    return row


async def _load(conn: Connection, name: str) -> Tagged[ModelOut]:
    row = await load_row(conn, name)
    job = await JobRepository(conn).get(row.job_id) if row.job_id is not None else None
    fields = msgspec.structs.asdict(row)
    del fields["id"], fields["job_id"], fields["revision"]
    fields["status"] = job.status if job else "idle"  # the job as read, so they agree
    return Tagged(ModelOut(**fields, job=job), row.revision)
