"""Process hygiene shared by production and development code: children die with their parent."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

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
