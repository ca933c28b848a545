"""A child asked to die with its parent does, even when the parent is SIGKILLed; the api's
Hypercorn configuration comes from its settings."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="parent-death signal is Linux-only"
)

ROOT = Path(__file__).resolve().parents[1]

# Starts a sleeping grandchild that should die with it, reports its pid, then dies uncleanly.
PARENT = """
import functools, os, signal, subprocess, sys
from service.process import die_with_parent
child = subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(120)"],
    preexec_fn=functools.partial(die_with_parent, signal.SIGKILL, os.getpid()),
)
print(child.pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _gone(pid: int) -> bool:
    # The orphan is reaped by init (or a subreaper), so a zombie counts as gone too.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_child_is_killed_when_its_parent_is() -> None:
    parent = subprocess.run(
        [sys.executable, "-c", PARENT], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    child = int(parent.stdout)
    deadline = time.monotonic() + 10
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not _gone(child):
        os.kill(child, 9)
        pytest.fail(f"pid {child} outlived its parent")


def test_child_whose_parent_is_already_gone_exits_at_once() -> None:
    # The child's parent is this process; naming another one is how it looks when the parent
    # died (and the child was re-parented) before the request was made.
    not_the_parent = os.getpid() + 1
    code = "import signal; from service.process import die_with_parent; "
    code += f"die_with_parent(signal.SIGTERM, {not_the_parent}); print('still here')"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout) == (1, "")


def test_hypercorn_takes_the_http_settings_and_never_cuts_a_response_before_the_service() -> None:
    from service.process import hypercorn_config
    from service.settings import HttpSettings

    http = HttpSettings(bind="0.0.0.0:9000", keep_alive_timeout=3.0, graceful_timeout=7.0)
    config = hypercorn_config(http)
    assert config.bind == ["0.0.0.0:9000"]
    assert config.keep_alive_timeout == 3.0 and config.graceful_timeout == 7.0
    # Hypercorn's read timeout also runs while a response streams: past the export's deadline.
    assert config.read_timeout is not None
    assert config.read_timeout >= http.export_timeout + http.send_timeout
    assert config.accesslog is None
