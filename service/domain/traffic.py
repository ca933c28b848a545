"""Use cases of a model's traffic: how predictions that name no version or alias are shared
between versions (`split`), and which versions see them as shadows.

The split is checked whole (weights summing to 100, each version once and existing, no shadow
also in the split) and stored under the model's row lock; every api process hears of it at the
commit and routes by it at its next prediction. No stored split means the current version.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.domain.errors import FieldError, InvalidInput
from service.domain.models import load_row, lock_model
from service.domain.preconditions import IfMatch, check
from service.repositories.database import Database
from service.repositories.models import ModelRepository
from service.repositories.registry import TrafficRepository, TrafficRow
from service.repositories.versions import VersionRepository
from service.schemas.registry import TrafficPut

DEFAULT_FIGURES_REVISION = 0
"""The figures of predictions routed with no split stored: per version, whenever it was current."""


@dataclass(frozen=True)
class TrafficState:
    model_id: int
    current_version: int | None
    stored: TrafficRow | None  # None: everything goes to the current version

    @property
    def figures_revision(self) -> int:
        """Figures restart whenever the split changes: they are kept per stored revision."""
        return DEFAULT_FIGURES_REVISION if self.stored is None else self.stored.revision


class Traffic:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, name: str) -> TrafficState:
        async with self.db.connection() as conn:
            model = await load_row(conn, name)
            stored = await TrafficRepository(conn).get(model.id)
        return TrafficState(model.id, model.current_version, stored)

    async def put(
        self, name: str, body: TrafficPut, if_match: IfMatch | None = None
    ) -> TrafficState:
        split = [(share.version, share.weight) for share in body.split]
        _check(split, body.shadow)
        async with self.db.transaction() as conn:
            await lock_model(conn, name, None)
            model = await load_row(conn, name)
            repo = TrafficRepository(conn)
            existing = await repo.get(model.id)
            check(if_match, _what(name), existing.revision if existing else None)
            wanted = [v for v, _ in split] + list(body.shadow)
            missing = await VersionRepository(conn).missing(model.id, wanted)
            if missing:
                raise InvalidInput(
                    f"model '{name}' has no version {', '.join(map(str, sorted(missing)))}",
                    [FieldError(_loc(body, v), f"no version {v}") for v in sorted(missing)],
                )
            stored = await repo.put(model.id, split, list(body.shadow))
            await ModelRepository(conn).notify_changed(name)
        return TrafficState(model.id, model.current_version, stored)

    async def delete(self, name: str, if_match: IfMatch | None = None) -> None:
        """Back to the current version; deleting the default split changes nothing."""
        async with self.db.transaction() as conn:
            model_id = await lock_model(conn, name, None)
            repo = TrafficRepository(conn)
            existing = await repo.get(model_id)
            check(if_match, _what(name), existing.revision if existing else None)
            if existing is not None:
                await repo.delete(model_id)
                await ModelRepository(conn).notify_changed(name)


def _check(split: list[tuple[int, int]], shadow: list[int]) -> None:
    errors: list[FieldError] = []
    total = sum(weight for _, weight in split)
    if total != 100:
        errors.append(FieldError("$.split", f"weights sum to {total}, not 100"))
    seen: set[int] = set()
    for i, (version, _) in enumerate(split):
        if version in seen:
            errors.append(FieldError(f"$.split[{i}].version", f"version {version} is repeated"))
        seen.add(version)
    for i, version in enumerate(shadow):
        if version in seen:
            why = "is in the split" if any(v == version for v, _ in split) else "is repeated"
            errors.append(FieldError(f"$.shadow[{i}]", f"version {version} {why}"))
        seen.add(version)
    if errors:
        raise InvalidInput("the traffic split is not valid", errors)


def _loc(body: TrafficPut, version: int) -> str:
    for i, share in enumerate(body.split):
        if share.version == version:
            return f"$.split[{i}].version"
    return f"$.shadow[{body.shadow.index(version)}]"


def _what(name: str) -> str:
    return f"the traffic of model '{name}'"
