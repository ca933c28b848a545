"""The use cases a worker process calls, built over one database pool: the worker's
composition root, so that the worker itself never touches a repository or a connection."""

from __future__ import annotations

from dataclasses import dataclass

from service.artifacts.keys import Keyring
from service.artifacts.store import ArtifactStore
from service.domain.batch_runs import BatchRuns
from service.domain.deliveries import Deliveries
from service.domain.fits import Fits
from service.domain.job_runs import JobRuns
from service.domain.sweeps import Sweeps
from service.repositories.database import Database
from service.settings import Settings


@dataclass(frozen=True)
class JobServices:
    db: Database
    runs: JobRuns
    fits: Fits
    batch_runs: BatchRuns
    sweeps: Sweeps
    deliveries: Deliveries

    @classmethod
    async def start(cls, settings: Settings) -> JobServices:
        """Connects lazily (see `Database`), so a worker starts while PostgreSQL is down."""
        db = Database(settings.database)
        await db.start()
        artifacts = ArtifactStore(db, Keyring.from_settings(settings.artifacts))
        runs = JobRuns(db)
        return cls(
            db=db,
            runs=runs,
            fits=Fits(db, artifacts, settings.worker.max_train_rows),
            batch_runs=BatchRuns(db, artifacts, runs),
            sweeps=Sweeps(db),
            deliveries=Deliveries(db),
        )

    async def close(self) -> None:
        await self.db.close()
