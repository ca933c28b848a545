"""SIGTERM stops the worker process and everything it started, and says so in JSON, once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service.settings import Settings
from tests.factories import ROOT
from tests.process_logs import json_lines, repeated
from tests.processes import worker_env

HELPERS = {
    "forkserver": "multiprocessing.forkserver",
    "resource tracker": "multiprocessing.resource_tracker",
}


def _children(parent: int) -> dict[str, int]:
    """The parent's multiprocessing helpers that are alive (not zombies), by name."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().decode(errors="replace")
        except OSError:  # exited meanwhile
            continue
        state, ppid = fields[0], int(fields[1])
        if ppid != parent or state == "Z":
            continue
        for name, module in HELPERS.items():
            if module in cmdline:
                found[name] = int(stat.parent.name)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _stop_worker_once_its_helpers_run(
    settings: Settings, log: Path
) -> tuple[dict[str, int], int, dict[str, bool]]:
    """Start `python -m service worker`, SIGTERM it as soon as its helpers exist.

    Returns the helpers, the exit status and which helpers were alive right after the exit.
    The log goes to a file, not a pipe: the helpers inherit it, and reading a pipe to its end
    would wait for them as well.
    """
    env = worker_env(settings, f"test-{os.getpid()}-{time.monotonic_ns()}", "json")
    with log.open("w") as stderr:
        worker = subprocess.Popen(
            [sys.executable, "-m", "service", "worker"],
            cwd=ROOT,
            env=env,
            stdout=stderr,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 60
        while len(helpers := _children(worker.pid)) < len(HELPERS):
            assert worker.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"helpers never all started: {helpers}"
            time.sleep(0.05)
    finally:
        # Often while the forkserver is still importing scikit-learn: the slowest case.
        worker.send_signal(signal.SIGTERM)
        status = worker.wait(timeout=60)
    return helpers, status, {name: _alive(pid) for name, pid in helpers.items()}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.anyio
async def test_sigterm_stops_the_forkserver_and_resource_tracker_with_the_worker(
    settings: Settings, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    helpers, status, alive = await asyncio.to_thread(
        _stop_worker_once_its_helpers_run, settings, log
    )
    assert status == 0, log.read_text()
    # Gone by the time the worker has exited, not some time later.
    assert alive == dict.fromkeys(HELPERS, False)
    entries = json_lines(log.read_text())
    assert repeated(entries) == []
    messages = [entry["msg"] for entry in entries]
    assert messages.count("worker started") == 1
    assert messages[-1] == "worker stopped"
