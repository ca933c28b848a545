"""Job functions: thin wrappers that decode a payload and call domain code."""

from __future__ import annotations

from typing import Any

from arq.cron import CronJob

from service.worker.app import JobFunction

PING = "ping"


async def ping(ctx: dict[str, Any]) -> str:
    """A queue round trip with no side effects, for smoke tests of a deployment."""
    return "pong"


# name → (coroutine, arq.func options)
FUNCTIONS: dict[str, tuple[JobFunction, dict[str, Any]]] = {
    PING: (ping, {"max_tries": 1}),
}

CRON_JOBS: list[CronJob] = []
