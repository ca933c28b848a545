"""A fit target that dies the way native code does when it cannot allocate: SIGSEGV."""

from __future__ import annotations

import ctypes
from collections.abc import Callable


def segfault(request: bytes, note: Callable[[bytes], None]) -> bytes:
    ctypes.string_at(0)  # reads address 0: the process gets SIGSEGV
    return b""
