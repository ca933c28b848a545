"""The in-process `json → predict → json` floor, with the estimator the service itself stored."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec
import numpy as np

from bench.common import Config
from bench.harness import Service

MAX_CALLS = 200_000  # per round; the round also stops after Config.seconds


async def load_estimator(svc: Service, name: str) -> Any:
    """The current version's fitted pipeline, read from the service's database and verified."""
    from service.artifacts import signing
    from service.artifacts.keys import Keyring
    from service.artifacts.store import unpickle
    from service.settings import ArtifactSettings

    conn = await asyncpg.connect(svc.database_url)
    try:
        row = await conn.fetchrow(
            """SELECT a.data, v.artifact_hmac, v.artifact_sha256, v.artifact_key_id,
                      v.model_id, v.version, m.tenant
               FROM models m
               JOIN model_versions v ON v.model_id = m.id AND v.version = m.current_version
               JOIN artifacts a ON a.model_id = v.model_id AND a.version = v.version
               WHERE m.name = $1""",
            name,
        )
    finally:
        await conn.close()
    if row is None:
        raise RuntimeError(f"no artifact for model {name!r}")
    key = svc.env["SERVICE__ARTIFACTS__HMAC_KEY"]
    keys = Keyring.from_settings(ArtifactSettings(hmac_key=key))
    place = signing.Place(row["tenant"], row["model_id"], row["version"])
    seal = signing.Seal(row["artifact_sha256"], row["artifact_hmac"], row["artifact_key_id"])
    keys.verify(row["data"], place, seal)
    return unpickle(row["data"])


@dataclass
class InProcessFloor:
    name: str
    pipeline: Any
    features: list[str]
    one: bytes  # a 1-row request body
    many: bytes  # a many-row request body
    one_us: list[float] = field(default_factory=list)
    rows_per_s: list[float] = field(default_factory=list)

    def call(self, body: bytes) -> bytes:
        records = msgspec.json.decode(body)["data"]
        X = np.array([[r[f] for f in self.features] for r in records], dtype=np.float64)
        for _, step in self.pipeline.steps[:-1]:
            X = step.transform(X)
        values = self.pipeline.steps[-1][1].predict(X)
        return msgspec.json.encode(
            {"model": self.name, "version": 1, "predictions": values.tolist()}
        )

    def _round(self, body: bytes, seconds: float) -> list[float]:
        """Seconds per call, for calls made within `seconds` (at least 3, at most MAX_CALLS)."""
        times: list[float] = []
        deadline = time.perf_counter() + seconds
        while len(times) < MAX_CALLS and (len(times) < 3 or time.perf_counter() < deadline):
            start = time.perf_counter()
            self.call(body)
            times.append(time.perf_counter() - start)
        return times

    def measure(self, config: Config) -> InProcessFloor:
        """Per round: the median 1-row call (comparable with a p50), and rows/s of big calls."""
        rows = len(msgspec.json.decode(self.many)["data"])
        self._round(self.one, config.warmup)
        for _ in range(config.reps):
            self.one_us.append(statistics.median(self._round(self.one, config.seconds)) * 1e6)
            times = self._round(self.many, config.seconds)
            self.rows_per_s.append(len(times) * rows / sum(times))
        return self
