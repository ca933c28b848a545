"""Which version of which model to serve, and the loaded estimators, with no database round
trip per request.

`current` maps a (tenant, model name) to its id and current version; `models` caches loaded
estimators by (model id, version): versions are immutable, so the pair names one artifact, whose
sha256 and HMAC tag are checked when it is loaded. An artifact larger than the whole cache is
never read nor unpickled (its size is known from the database first): the version is refused
with a 409, and its size remembered, so later requests are refused at once.

Both caches are dropped for a model when PostgreSQL says it changed (`NOTIFY model_changed`), and
entirely after the listening connection was lost, since notifications may have been missed
meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from service.artifacts import signing
from service.artifacts.keys import Keyring
from service.artifacts.store import ArtifactStore, unpickle
from service.domain.errors import Conflict, NotFound
from service.estimators.model_type import default_output
from service.repositories.database import Database
from service.repositories.models import Current, ModelRepository
from service.repositories.notifications import ModelChanges, listen_forever
from service.serving.cache import ByteBudgetCache
from service.serving.model_metrics import ModelMetrics

log = logging.getLogger(__name__)

TOO_LARGE_REMEMBERED = 1024  # versions whose size is remembered as too large, newest kept


class ModelTooLarge(Conflict):
    """A version's artifact is larger than the api's whole model cache (`models.cache_bytes`)."""

    def __init__(self, name: str, version: int, size: int, budget: int) -> None:
        super().__init__(
            f"version {version} of model '{name}' is {size} bytes, more than the api's whole"
            f" model cache (models.cache_bytes = {budget}), so it is not served online; use a"
            " batch prediction job, or have the operator raise models.cache_bytes"
        )


@dataclass(frozen=True)
class LoadedModel:
    name: str
    model_type: str
    model_id: int
    version: int
    estimator: Any
    features: list[str]
    feature_kinds: dict[str, Any]
    outputs: list[str]
    default_output: str


class ModelRegistry:
    def __init__(
        self, db: Database, keys: Keyring, cache_bytes: int, metrics: ModelMetrics | None = None
    ) -> None:
        self.db = db
        self.artifacts = ArtifactStore(db, keys)
        self.metrics = metrics or ModelMetrics(CollectorRegistry())
        self.models: ByteBudgetCache[LoadedModel] = ByteBudgetCache(
            cache_bytes, lambda key: self.metrics.evicted(_model_of(key))
        )
        self.current: dict[tuple[str, str], Current] = {}
        self.too_large: dict[tuple[int, int], int] = {}  # (model id, version) -> bytes
        # Bumped by every invalidation: a read that started before one must not be cached,
        # or a notification that arrived mid-read would be undone.
        self.generation = 0
        self._listener: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    # -- lookups on the hot path ---------------------------------------------------------------

    async def resolve(self, tenant: str, name: str, version: int | None) -> LoadedModel:
        """The caller's tenant's model `name`: the same name in two tenants is two models."""
        current = await self.route(tenant, name)
        return await self.load(name, current, version if version is not None else current.version)

    async def route(self, tenant: str, name: str) -> Current:
        """What decides which version answers: current version, aliases, split, shadows."""
        current = self.current.get((tenant, name))
        if current is None:
            current = await self._read_current(tenant, name)
        self.metrics.admit(tenant, name, current.model_id)
        if not current.can_output:
            raise Conflict(f"model '{name}' does not produce outputs")
        return current

    async def load(self, name: str, current: Current, version: int | None) -> LoadedModel:
        """Version `version` of the routed model, loaded once and then served from memory."""
        if version is None:
            raise Conflict(f"model '{name}' has no trained version yet")
        key = (current.model_id, version)
        found = self.models.get(key)
        self.metrics.cache_lookup(current.model_id, found is not None)
        if found is not None:
            return found
        size = self.too_large.get(key)
        if size is not None:
            raise ModelTooLarge(name, version, size, self.models.max_bytes)
        return await self.models.get_or_load(key, lambda: self._timed_load(name, current, version))

    async def _timed_load(
        self, name: str, current: Current, version: int
    ) -> tuple[LoadedModel, int]:
        start = time.perf_counter()
        loaded = await self._load(name, current, version)
        self.metrics.loaded(current.model_id, time.perf_counter() - start)
        return loaded

    async def _read_current(self, tenant: str, name: str) -> Current:
        generation = self.generation
        async with self.db.connection() as conn:
            current = await ModelRepository(conn).current(name)
        if current is None:
            raise NotFound(f"model '{name}' does not exist")
        # Only cache what a notification would correct, and nothing read before one.
        if self.listening.is_set() and generation == self.generation:
            self.current[tenant, name] = current
        return current

    async def _load(self, name: str, current: Current, version: int) -> tuple[LoadedModel, int]:
        # Sized before it is read: an artifact too large for the cache could be too large for
        # the api's memory too.
        stored_size = await self.artifacts.size(current.model_id, version)
        if stored_size is not None and stored_size > self.models.max_bytes:
            self._remember_too_large((current.model_id, version), stored_size)
            raise ModelTooLarge(name, version, stored_size, self.models.max_bytes)
        try:
            found = await self.artifacts.fetch(current.model_id, version)  # verified bytes
        except signing.TamperedArtifact:
            log.error(
                "artifact failed verification; refusing to load it",
                extra={"model": name, "version": version},
            )
            raise
        if found is None:
            raise NotFound(f"model '{name}' has no version {version}")
        size = len(found.data)
        if size > self.models.max_bytes:
            self._remember_too_large((current.model_id, version), size)
            raise ModelTooLarge(name, version, size, self.models.max_bytes)
        estimator = await asyncio.to_thread(unpickle, found.data)
        row = found.version
        model = LoadedModel(
            name,
            current.model_type,
            current.model_id,
            version,
            estimator,
            row.features,
            row.feature_kinds,
            row.outputs,
            default_output(row.outputs),
        )
        return model, size

    def _remember_too_large(self, key: tuple[int, int], size: int) -> None:
        self.too_large[key] = size
        while len(self.too_large) > TOO_LARGE_REMEMBERED:
            del self.too_large[next(iter(self.too_large))]

    # -- invalidation -------------------------------------------------------------------------

    def forget(self, tenant: str, name: str) -> None:
        self.generation += 1
        current = self.current.pop((tenant, name), None)
        if current is not None:
            model_id = current.model_id
            self.models.discard(lambda key: _model_of(key) == model_id)

    def forget_all(self) -> None:
        self.generation += 1
        self.current.clear()
        self.models.clear()

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen_forever())

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener

    async def _listen_forever(self) -> None:
        await listen_forever(
            lambda: ModelChanges.listen(self.db.settings, self.forget),
            self.listening,
            self.forget_all,  # anything cached may have missed notifications
            "model-change listener",
        )


def _model_of(key: Hashable) -> int:
    return int(key[0]) if isinstance(key, tuple) else -1
