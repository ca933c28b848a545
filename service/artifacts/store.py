"""The one way in and out of stored model artifacts: fetch, verify, unpickle; and seal new ones.

The api's model cache, batch predictions and incremental updates all load through
`ArtifactStore`, so no path can unpickle bytes whose HMAC tag and sha256 were not checked first
(see `signing.py` for why that matters). Unpickling runs in a thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from typing import Any

import joblib

from service.artifacts import signing
from service.artifacts.keys import Keyring
from service.repositories.database import Database
from service.repositories.versions import VersionRepository, VersionRow


@dataclass(frozen=True)
class StoredArtifact:
    """A version's metadata and its artifact bytes."""

    version: VersionRow
    data: bytes


@dataclass(frozen=True)
class LoadedArtifact:
    """A version's metadata and its estimator, unpickled from verified bytes."""

    version: VersionRow
    estimator: Any
    size: int


class ArtifactStore:
    def __init__(self, db: Database, keys: Keyring) -> None:
        self.db = db
        self.keys = keys

    def seal(self, digest: str, place: signing.Place) -> signing.Seal:
        """The current key's seal for bytes with sha256 `digest`, stored as `place`."""
        return self.keys.seal(digest, place)

    def verify(self, version: VersionRow, data: bytes) -> None:
        """TamperedArtifact unless `data` is exactly what a worker stored for `version`."""
        stored = signing.Seal(
            version.artifact_sha256, version.artifact_hmac, version.artifact_key_id
        )
        self.keys.verify(data, place_of(version), stored)

    async def size(self, model_id: int, version: int) -> int | None:
        """The size of the version's artifact, without reading it; None when it is gone."""
        async with self.db.connection() as conn:
            return await VersionRepository(conn).artifact_size(model_id, version)

    async def fetch(self, model_id: int, version: int) -> StoredArtifact | None:
        """The version's verified bytes, still pickled; None when the version is gone."""
        found = await self._read(model_id, version)
        if found is not None:
            await asyncio.to_thread(self.verify, found.version, found.data)
        return found

    async def load(self, model_id: int, version: int) -> LoadedArtifact | None:
        """The version's estimator; None when the version is gone."""
        found = await self._read(model_id, version)
        if found is None:
            return None
        estimator = await asyncio.to_thread(self._verified_estimator, found)
        return LoadedArtifact(found.version, estimator, len(found.data))

    def _verified_estimator(self, found: StoredArtifact) -> Any:
        self.verify(found.version, found.data)
        return unpickle(found.data)

    async def _read(self, model_id: int, version: int) -> StoredArtifact | None:
        """The stored row and bytes, NOT yet verified (callers verify before use)."""
        async with self.db.connection() as conn:
            repo = VersionRepository(conn)
            row = await repo.get_row(model_id, version)
            data = await repo.artifact(model_id, version) if row is not None else None
        if row is None or data is None:
            return None
        return StoredArtifact(row, data)


def place_of(version: VersionRow) -> signing.Place:
    """Where the version's seal says it belongs: its tenant, unless it was sealed before tenants
    existed (see migration 0011)."""
    tenant = version.artifact_tenant or version.tenant
    return signing.Place(tenant, version.model_id, version.version)


def unpickle(data: bytes) -> Any:
    """Only for bytes that were verified (by `ArtifactStore`, or by the parent of a fit child)."""
    return joblib.load(io.BytesIO(data))
