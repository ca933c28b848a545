"""`python -m service api` as deployed: its own lines are JSON, each written once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from service.settings import Settings
from tests.factories import ROOT
from tests.process_logs import json_lines, repeated
from tests.tcpproxy import free_port


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _run_api_until_ready(settings: Settings, port: int) -> tuple[int, str, str]:
    """Start the api, wait until it is ready, SIGTERM it: (exit status, stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVICE__")}
    env.update(
        {
            "SERVICE__DATABASE__URL": settings.database.url,
            "SERVICE__REDIS__URL": settings.redis.url,
            "SERVICE__ARTIFACTS__HMAC_KEY": settings.artifacts.hmac_key,
            "SERVICE__AUTH__MODE": "disabled",
            "SERVICE__HTTP__BIND": f"127.0.0.1:{port}",
            "SERVICE__LOGGING__FORMAT": "json",
        }
    )
    api = subprocess.Popen(
        [sys.executable, "-m", "service", "api"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not _ready(port):
            assert api.poll() is None, api.communicate()
            assert time.monotonic() < deadline, "the api did not get ready"
            time.sleep(0.1)
    finally:
        api.send_signal(signal.SIGTERM)
        stdout, stderr = api.communicate(timeout=60)
    return api.returncode, stdout, stderr


@pytest.mark.anyio
async def test_api_start_up_and_shutdown_lines_are_json_and_written_once(
    settings: Settings,
) -> None:
    port = free_port()
    status, stdout, stderr = await asyncio.to_thread(_run_api_until_ready, settings, port)
    assert status == 0, stderr
    assert stdout == ""
    entries = json_lines(stderr)
    assert repeated(entries) == []
    messages = [entry["msg"] for entry in entries]
    assert messages.count("api started") == 1
    assert sum(m.startswith(f"Running on http://127.0.0.1:{port}") for m in messages) == 1
    assert messages[-1] == "api stopped"
