"""`make run` as a newcomer sees it: one command brings up api and worker, ready within 30 s."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest

from tests.factories import ROOT, Servers, drop_database, with_database
from tests.tcpproxy import free_port


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _run_dev(env_overrides: dict[str, str]) -> tuple[int, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVICE__")}
    env.update(
        {
            "SERVICE__HTTP__BIND": f"127.0.0.1:{port}",
            "SERVICE__WORKER__METRICS_PORT": "0",
            "SERVICE__REDIS__QUEUE_NAME": f"test:{uuid.uuid4().hex[:8]}",
            **env_overrides,
        }
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "dev"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    started = time.monotonic()
    try:
        while time.monotonic() - started < 30:
            if _ready(port):
                break
            assert process.poll() is None, process.communicate()[0][-3000:]
            time.sleep(0.3)
        assert _ready(port), "not ready within 30 s"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
    assert process.returncode == 0, output[-3000:]
    return port, output


def test_dev_uses_the_configured_servers_and_creates_the_database(servers: Servers) -> None:
    name = f"dev_{uuid.uuid4().hex[:10]}"
    database = with_database(servers.postgres, name)
    try:
        _, output = _run_dev(
            {"SERVICE__DATABASE__URL": database, "SERVICE__REDIS__URL": servers.redis}
        )
    finally:
        asyncio.run(drop_database(servers.postgres, name))
    assert f"created database {name}" in output
    assert "Authorization: Bearer ey" in output  # a ready-to-paste development token
    assert "api    |" in output, output  # labelled, interleaved logs


@pytest.mark.skipif(sys.platform != "linux", reason="embedded servers are tested on Linux")
def test_dev_starts_embedded_servers_when_none_answer() -> None:
    closed = free_port()
    _, output = _run_dev(
        {
            "SERVICE__DATABASE__URL": f"postgresql://postgres@127.0.0.1:{closed}/models",
            "SERVICE__REDIS__URL": f"redis://127.0.0.1:{closed}/0",
        }
    )
    assert "starting an embedded one" in output
