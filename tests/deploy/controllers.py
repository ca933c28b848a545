"""The controllers that turn the manifests' Jobs and Deployments into pods on the local kubelet:
a Job runs its pod to completion (again after a failure, up to `backoffLimit`); a Deployment
keeps `replicas` pods and replaces them as its `strategy` says — a rolling update bounded by
`maxSurge` and `maxUnavailable` (and `minReadySeconds`), or Recreate."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from tests.deploy.kubelet import Kubelet, Pod

SETTLE_SECONDS = 0.5  # how often a controller looks again without being woken (minReadySeconds)


async def run_job(kubelet: Kubelet, name: str, within: float) -> list[int | None]:
    """The exit status of each attempt of Job `name`'s pod, until one succeeds or the back-off
    limit is reached. (An `OnFailure` pod restarts its container in place after a back-off;
    here each attempt is a fresh pod at once, which runs the same command the same way.)"""
    spec = kubelet.object("Job", name)["spec"]
    statuses: list[int | None] = []
    for _ in range(spec.get("backoffLimit", 6) + 1):
        pod = await kubelet.run_pod(name, spec["template"], restart_policy="Never")

        def ended(pod: Pod = pod) -> bool:
            return pod.finished

        await kubelet.changes.until(ended, within, f"the Job {name} to end")
        statuses.append(pod.runs[-1].exit_code)
        if statuses[-1] == 0:
            break
    return statuses


def _count(value: int | str, replicas: int, round_up: bool) -> int:
    if isinstance(value, str):
        assert value.endswith("%"), value
        share = int(value[:-1]) * replicas / 100
        return math.ceil(share) if round_up else math.floor(share)
    return value


class Deployment:
    def __init__(self, kubelet: Kubelet, name: str, replicas: int | None = None) -> None:
        """`replicas` overrides the manifest's, as `kubectl scale` would."""
        self.kubelet = kubelet
        self.name = name
        spec: dict[str, Any] = kubelet.object("Deployment", name)["spec"]
        self.replicas: int = spec.get("replicas", 1) if replicas is None else replicas
        self.template = spec["template"]
        self.min_ready_seconds: int = spec.get("minReadySeconds", 0)
        strategy = spec.get("strategy", {})
        self.strategy: str = strategy.get("type", "RollingUpdate")
        rolling = strategy.get("rollingUpdate", {})
        self.max_surge = _count(rolling.get("maxSurge", "25%"), self.replicas, round_up=True)
        self.max_unavailable = _count(
            rolling.get("maxUnavailable", "25%"), self.replicas, round_up=False
        )
        if self.max_surge == 0 and self.max_unavailable == 0:
            self.max_unavailable = 1  # what the controller does when both round down to 0
        self.pods: list[Pod] = []
        self.replaced: list[Pod] = []  # pods a rollout deleted, to read their ends
        self._ready_since: dict[str, float] = {}

    def available(self, pod: Pod) -> bool:
        pod.check()
        if not pod.ready:
            self._ready_since.pop(pod.name, None)
            return False
        since = self._ready_since.setdefault(pod.name, time.monotonic())
        return time.monotonic() - since >= self.min_ready_seconds

    async def _settle(self) -> None:
        await self.kubelet.changes.next(SETTLE_SECONDS)

    async def _create(self) -> Pod:
        return await self.kubelet.run_pod(self.name, self.template)

    async def scale(self, within: float) -> None:
        """Creates the missing pods and waits until every one is available."""
        while len(self.pods) < self.replicas:
            self.pods.append(await self._create())
        deadline = time.monotonic() + within
        while not all(self.available(pod) for pod in self.pods):
            assert time.monotonic() < deadline, f"{self.name} was not available within {within} s"
            await self._settle()

    async def restart(self, within: float) -> None:
        """`kubectl rollout restart`: every pod replaced by a new one as the strategy says;
        returns once the old pods have ended, with the new ones available."""
        old, new = list(self.pods), list[Pod]()
        ending: list[asyncio.Task[None]] = []
        deadline = time.monotonic() + within
        if self.strategy == "Recreate":
            await asyncio.gather(*(pod.delete() for pod in old))
            self.replaced += old
            old = []
        while True:
            if not old and all(self.available(pod) for pod in new) and len(new) == self.replicas:
                break
            assert time.monotonic() < deadline, f"the rollout of {self.name} took over {within} s"
            while len(old) + len(new) < self.replicas + self.max_surge and len(new) < self.replicas:
                new.append(await self._create())
            floor = self.replicas - self.max_unavailable
            # Unavailable old pods go first, as the controller scales down unhealthy ones first.
            for pod in sorted(old, key=self.available):
                available = sum(self.available(p) for p in old + new)
                if available - self.available(pod) < floor:
                    break
                old.remove(pod)
                self.replaced.append(pod)
                ending.append(asyncio.create_task(pod.delete()))
            await self._settle()
        self.pods = new
        await asyncio.gather(*ending)
