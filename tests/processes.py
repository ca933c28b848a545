"""The service's own processes (`python -m service worker`) started for a test, and liveness of
the processes they spawn."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from service.settings import Settings
from tests.factories import ROOT


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers signal 0; it is gone as far as work is concerned.
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


def worker_env(settings: Settings, worker_id: str, log_format: str) -> dict[str, str]:
    """The environment of a `python -m service worker` for the test's servers and queue: this
    process's own, less any SERVICE__ overrides it may carry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVICE__")}
    env.update(
        {
            "SERVICE__DATABASE__URL": settings.database.url,
            "SERVICE__REDIS__URL": settings.redis.url,
            "SERVICE__REDIS__QUEUE_NAME": settings.redis.queue_name,
            "SERVICE__ARTIFACTS__HMAC_KEY": settings.artifacts.hmac_key,
            "SERVICE__AUTH__MODE": "disabled",
            "SERVICE__WORKER__METRICS_PORT": "0",
            "SERVICE__LOGGING__FORMAT": log_format,
            "SERVICE_WORKER_ID": worker_id,
        }
    )
    return env


class WorkerProcess:
    """`python -m service worker` configured by environment variables, as in production:
    `[worker]` settings as keywords, `[webhooks]` ones in `webhooks`."""

    def __init__(
        self, settings: Settings, webhooks: dict[str, object] | None = None, **worker: object
    ) -> None:
        self.worker_id = f"test-{os.getpid()}-{time.monotonic_ns()}"
        env = worker_env(settings, self.worker_id, "text")
        env["SERVICE__WORKER__HEARTBEAT_SECONDS"] = "1"
        env.update({f"SERVICE__WORKER__{k.upper()}": str(v) for k, v in worker.items()})
        env.update({f"SERVICE__WEBHOOKS__{k.upper()}": str(v) for k, v in (webhooks or {}).items()})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service", "worker"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=None if os.environ.get("TEST_WORKER_LOGS") else subprocess.DEVNULL,
        )

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


async def accepts(port: int) -> bool:
    """Whether something accepts TCP connections on the port."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True
