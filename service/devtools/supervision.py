"""Start, watch and stop the embedded servers' processes.

Each server is a child process listening on 127.0.0.1 on a free port. It is stopped by
`EmbeddedServer.stop()`, at interpreter exit, and, on Linux, by the kernel when the starting
thread dies (so a crashed or SIGKILLed test run does not leave servers behind).
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict
from urllib.parse import urlsplit

from service.process import die_with_parent

logger = logging.getLogger(__name__)

DEV_EXTRA_HINT = "install the dev extra (make install)"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
# Picking a free port and binding it are two steps; another process may grab it in between.
PORT_ATTEMPTS = 3
LOG_TAIL_LINES = 30
DEFAULT_PORTS = {"postgresql": 5432, "postgres": 5432, "redis": 6379, "rediss": 6379}

Process = subprocess.Popen[bytes]


class EmbeddedServer:
    """A server process started by this package; `url` is how clients reach it over TCP."""

    def __init__(
        self,
        url: str,
        process: Process,
        stop_signal: signal.Signals,
        cleanup: Callable[[], None] | None = None,
    ) -> None:
        self.url = url
        self._process = process
        self._stop_signal = stop_signal
        self._cleanup = cleanup
        # A forked child inherits atexit handlers; it must not stop its parent's servers.
        self._owner_pid = os.getpid()
        self._stopped = False
        self._lock = threading.Lock()
        atexit.register(self.stop)

    def stop(self) -> None:
        """Stop the server and wait for it to exit; later calls do nothing."""
        with self._lock:
            if self._stopped or os.getpid() != self._owner_pid:
                return
            self._stopped = True
            atexit.unregister(self.stop)
            terminate(self._process, self._stop_signal)
            if self._cleanup is not None:
                self._cleanup()
            logger.info("stopped embedded server %s", self.url)

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else f"pid {self._process.pid}"
        return f"EmbeddedServer({self.url!r}, {state})"


def answers(url: str, timeout: float = 1.0) -> bool:
    """True when a TCP connection to the URL's host and port succeeds within `timeout` seconds."""
    parts = urlsplit(url)
    port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    if port is None:
        raise ValueError(f"no port in {url!r} and no default port for scheme {parts.scheme!r}")
    return connects(parts.hostname or "localhost", port, timeout)


@dataclass(frozen=True)
class Account:
    """An OS account a server runs as instead of ours."""

    uid: int
    gid: int


class Privileges(TypedDict):
    user: int | None
    group: int | None
    extra_groups: list[int] | None


def run_as(account: Account | None) -> Privileges:
    """subprocess keyword arguments that drop root privileges to `account` in the child."""
    if account is None:
        return {"user": None, "group": None, "extra_groups": None}
    # extra_groups=[] also drops root's supplementary groups, not just uid and gid.
    return {"user": account.uid, "group": account.gid, "extra_groups": []}


def spawn(
    argv: list[str],
    log_path: Path,
    death_signal: signal.Signals,
    account: Account | None,
    cwd: Path,
) -> Process:
    """Start `argv` with its output in `log_path`, to be signalled when this thread dies."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            # Own session: a Ctrl-C in the terminal must not kill the servers before the
            # application has closed its connections; stop() and atexit handle shutdown.
            start_new_session=True,
            # The hook runs after subprocess has dropped privileges (a uid change clears the
            # request) and only calls prctl() and getppid(): nothing that could deadlock.
            preexec_fn=functools.partial(die_with_parent, death_signal, os.getpid()),
            **run_as(account),
        )


def start_on_free_port(
    name: str,
    log_path: Path,
    launch: Callable[[int], Process],
    ready: Callable[[Process, int], bool],
) -> tuple[Process, int]:
    """Launch on a free port until `ready` holds; retry only when the port was taken meanwhile."""
    for attempt in range(1, PORT_ATTEMPTS + 1):
        port = free_port()
        process = launch(port)
        if _wait_until_ready(process, port, ready):
            return process, port
        status = process.poll()
        terminate(process, signal.SIGKILL)
        tail = _log_tail(log_path)
        if "Address already in use" in tail and attempt < PORT_ATTEMPTS:
            logger.info("%s lost port %d to another process, retrying", name, port)
            continue
        reason = f"exited with status {status}" if status is not None else "timed out"
        raise RuntimeError(
            f"{name} did not start on 127.0.0.1:{port} ({reason}); {log_path} ends with:\n{tail}"
        )
    raise AssertionError("unreachable: the last attempt returns or raises")


def _wait_until_ready(process: Process, port: int, ready: Callable[[Process, int], bool]) -> bool:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if ready(process, port):
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def terminate(process: Process, sig: signal.Signals) -> None:
    """Send `sig` and wait for the exit; SIGKILL when the process ignores it for too long."""
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        logger.warning(
            "pid %d ignored %s for %.0f s; killing it", process.pid, sig.name, STOP_TIMEOUT
        )
        process.kill()
        process.wait()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def connects(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _log_tail(log_path: Path) -> str:
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(lines[-LOG_TAIL_LINES:])
