"""The worker process as deployed: liveness check (light enough for an exec probe) and its own
metrics endpoint."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from service.settings import Settings
from tests.factories import ROOT, Servers, wait_until
from tests.processes import WorkerProcess
from tests.tcpproxy import free_port


def _get(url: str) -> str:
    # No proxy: an inherited HTTP_PROXY must not carry a loopback address elsewhere.
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
        url, timeout=5
    ) as response:
        body: bytes = response.read()
        return body.decode()


def check(settings: Settings, worker_id: str) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVICE__")}
    env.update(
        {
            "SERVICE__REDIS__URL": settings.redis.url,
            "SERVICE__REDIS__QUEUE_NAME": settings.redis.queue_name,
            "SERVICE_WORKER_ID": worker_id,
        }
    )
    result = subprocess.run(
        [sys.executable, "-m", "service", "worker", "--check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=60,
    )
    return result.returncode


@pytest.mark.anyio
async def test_check_follows_this_workers_heartbeat_and_metrics_are_served(
    settings: Settings,
) -> None:
    port = free_port()
    worker = WorkerProcess(settings, metrics_port=port)
    worker_id = worker.worker_id
    try:

        async def healthy() -> bool:
            assert worker.process.poll() is None, f"the worker exited: {worker.process.returncode}"
            return await asyncio.to_thread(check, settings, worker_id) == 0

        await wait_until(healthy, 60, "the worker's first heartbeat", interval=0.5)
        assert check(settings, "some-other-worker") == 1
        text = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics")
        assert "process_resident_memory_bytes" in text
    finally:
        worker.stop()
    assert worker.process.returncode == 0
    assert check(settings, worker_id) == 1


def _refused(url: str) -> bool:
    try:
        _get(url)
    except urllib.error.URLError as exc:
        return isinstance(exc.reason, ConnectionRefusedError)
    return False


@pytest.mark.anyio
async def test_metrics_bind_to_the_configured_address_only(settings: Settings) -> None:
    """127.0.0.2 is loopback too, but another address: the port must answer there and only
    there, so a worker configured for loopback is never reachable on every interface."""
    port = free_port()
    worker = WorkerProcess(settings, metrics_port=port, metrics_address="127.0.0.2")
    try:

        async def serving() -> bool:
            assert worker.process.poll() is None, f"the worker exited: {worker.process.returncode}"
            try:
                await asyncio.to_thread(_get, f"http://127.0.0.2:{port}/metrics")
            except OSError:
                return False
            return True

        await wait_until(serving, 60, "the worker's metrics on 127.0.0.2", interval=0.5)
        assert await asyncio.to_thread(_refused, f"http://127.0.0.1:{port}/metrics")
    finally:
        worker.stop()
    assert worker.process.returncode == 0


def test_metrics_default_to_loopback() -> None:
    assert Settings().worker.metrics_address == "127.0.0.1"


def test_the_check_loads_no_fitting_code(servers: Servers) -> None:
    """`worker --check` is an exec probe, run every few seconds: it reads the heartbeat and
    nothing else, so scikit-learn (seconds of CPU to import) stays out of it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVICE__")}
    env.update({"SERVICE__REDIS__URL": servers.redis, "SERVICE_WORKER_ID": "nobody"})
    script = (
        "import sys; from service.__main__ import main; status = main(['worker', '--check']); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'numpy'))[:5]); "
        "sys.exit(status)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr  # no heartbeat of a worker "nobody"
    assert result.stdout.strip() == "[]", result.stdout
