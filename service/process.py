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
    - Request bodies: each read from the socket waits at most `read_timeout`; a client that
      stops sending mid-body is disconnected then (the upload being spooled to a file, no
      transaction is open meanwhile). Hypercorn does not read while the application answers,
      so a slow response is not cut by it.
    - Responses: bounded by the application (`send_timeout`, `export_timeout`).
    """
    from hypercorn.config import Config

    config = Config()
    config.bind = [http.bind]
    config.graceful_timeout = http.graceful_timeout
    config.keep_alive_timeout = http.keep_alive_timeout
    config.read_timeout = http.read_timeout  # type: ignore[assignment]  # declared int | None
    config.accesslog = None  # the request-id middleware logs requests with their id
    # Hypercorn's own handler for "-" would print its lines a second time, and as plain text.
    config.errorlog = logging.getLogger("hypercorn.error")
    return config
