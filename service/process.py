"""Process hygiene shared by production and development code: children die with their parent;
the api's Hypercorn configuration, with its defences against slow clients."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hypercorn.config import Config

    from service.settings import HttpSettings

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

# Looked up once at import, in the parent: a preexec hook runs between fork and exec, where
# loading a library could deadlock on a lock another thread held at fork time.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def die_with_parent(death_signal: signal.Signals, parent_pid: int | None = None) -> None:
    """Have the kernel send `death_signal` to this process when its parent dies (Linux only).

    Call it in the child, early. Given `parent_pid`, the child exits at once when that parent
    is already gone, since the kernel would then never send the signal. The kernel tracks the
    *thread* that forked, so start children that must outlive a thread from a long-lived one; a
    change of uid clears the request, so call it after dropping privileges.
    """
    if _prctl is None:
        return
    _prctl(PR_SET_PDEATHSIG, int(death_signal))
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)


def hypercorn_config(http: HttpSettings) -> Config:
    """How `python -m service api` serves, bounded against clients that stall.

    - Request headers: Hypercorn's idle timer (`keep_alive_timeout`) runs from the connection's
      start, or the previous response, until a request's headers are complete, so a client that
      trickles headers is cut after `keep_alive_timeout` in total.
    - Request bodies: the application waits at most `http.read_timeout` for each piece (408),
      and spools CSV uploads before opening a transaction (`service.domain.spool`).
    - Responses: bounded by the application (`send_timeout`, `export_timeout`).

    Hypercorn's own `read_timeout` is not the body timeout: it also runs while a response is
    being sent (the client sends nothing then), and on expiry tells the application that the
    client disconnected, which cancels a streamed response. Measured with 0.18: at 1 s it cut
    a 10 MB export read at 2 MB/s after about 2 s. It is set past the longest response the
    service allows (an export), as a last bound on a connection Hypercorn reads from.
    """
    from hypercorn.config import Config

    config = Config()
    config.bind = [http.bind]
    config.graceful_timeout = http.graceful_timeout
    config.keep_alive_timeout = http.keep_alive_timeout
    config.read_timeout = http.export_timeout + http.send_timeout  # type: ignore[assignment]
    config.accesslog = None  # the edge layer (http/edge.py) logs requests with their id
    # Hypercorn's own handler for "-" would print its lines a second time, and as plain text.
    config.errorlog = logging.getLogger("hypercorn.error")
    return config
