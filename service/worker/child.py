"""CPU work in a child process, so that cancelling a job really stops it: we kill the child.

Children come from a forkserver that has already imported scikit-learn, so starting one costs
milliseconds rather than the seconds a fresh interpreter would need. Requests and replies are
bytes over a pipe; the parent never unpickles anything the child produced. Before its reply the
child may send short notes (a training phase, say); a one-byte tag tells the frames apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from collections.abc import Awaitable, Callable
from multiprocessing import forkserver, resource_tracker
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from typing import Protocol, cast

from service.process import die_with_parent
from service.worker import limits as child_limits
from service.worker.limits import ChildLimits

_context: ForkServerContext | None = None
PRELOAD = ["service.worker.fitting"]
_NOTE, _REPLY = b"n", b"r"

Note = Callable[[bytes], None]
"""What a child's target calls to send the parent a note before its reply."""


class ChildDied(Exception):
    """The child exited without replying (killed, out of memory, crashed); `exitcode` is
    minus the signal that ended it, if one did."""

    def __init__(self, message: str, exitcode: int | None) -> None:
        super().__init__(message)
        self.exitcode = exitcode


def context() -> ForkServerContext:
    global _context  # one forkserver per worker process, started on first use
    if _context is None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        _context = ctx
    return _context


def _noop() -> None:
    return None


def warm_up() -> None:
    """Start the forkserver now (it imports scikit-learn and discovers the model types, a few
    seconds), so the first job does not pay for it."""
    process = context().Process(target=_noop, daemon=True)
    process.start()
    process.join(60)


class _Stoppable(Protocol):
    def _stop(self) -> None: ...


def stop_forkserver() -> None:
    """Kill this process's children, then stop its forkserver and resource tracker, and wait.

    Left alone, both notice that the worker is gone only after it has exited (end of file on a
    pipe), seconds later when the forkserver is still importing scikit-learn. A live child holds
    both pipes open, hence the kill first. `_stop()` is how CPython's own tests stop them.
    """
    for process in multiprocessing.active_children():
        _kill(process)
    cast(_Stoppable, forkserver._forkserver)._stop()
    cast(_Stoppable, resource_tracker._resource_tracker)._stop()


def _child_main(
    target: str, conn: multiprocessing.connection.Connection, limits: ChildLimits | None
) -> None:
    die_with_parent(signal.SIGKILL)  # the forkserver, and so the worker, is gone: stop at once
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides when children stop
    if limits is not None:
        child_limits.apply(limits)
    module, _, name = target.rpartition(".")
    function: Callable[[bytes, Note], bytes] = getattr(importlib.import_module(module), name)
    request = conn.recv_bytes()
    _exit_when_worker_gone(conn)
    reply = function(request, lambda note: conn.send_bytes(_NOTE + note))
    conn.send_bytes(_REPLY + reply)
    conn.close()


def _exit_when_worker_gone(conn: multiprocessing.connection.Connection) -> None:
    """The worker sends nothing after the request, so the pipe turning readable means its end
    closed: the worker is gone. Exit then, rather than fit for no one. (The parent-death signal
    covers the forkserver only, which can outlive a SIGKILLed worker while children hold its
    pipes open.)"""

    def watch() -> None:
        try:
            conn.poll(None)
        except (OSError, ValueError):  # closed by this process on its way out
            return
        os._exit(1)

    # Best effort: under a thread cap the fit goes on without it (the rlimits still bound it).
    with contextlib.suppress(RuntimeError):
        threading.Thread(target=watch, name="worker-watch", daemon=True).start()


async def run_in_child(
    target: str,
    request: bytes,
    on_start: Callable[[int], Awaitable[None]] | None = None,
    on_note: Callable[[bytes], Awaitable[None]] | None = None,
    limits: ChildLimits | None = None,
) -> bytes:
    """Calls `target(request, note) -> bytes` (a dotted function name) in a child process
    under `limits`; each `note(bytes)` the target sends reaches `on_note` while the child goes
    on.

    Cancelling the awaiting task kills the child at once.
    """
    parent_end, child_end = context().Pipe()
    process = context().Process(target=_child_main, args=(target, child_end, limits), daemon=True)
    await asyncio.to_thread(process.start)
    child_end.close()
    try:
        if on_start is not None and process.pid is not None:
            await on_start(process.pid)
        await asyncio.to_thread(parent_end.send_bytes, request)
        try:
            while (frame := await asyncio.to_thread(parent_end.recv_bytes))[:1] == _NOTE:
                if on_note is not None:
                    await on_note(frame[1:])
        except EOFError:
            await asyncio.to_thread(process.join, 5)
            code = process.exitcode
            raise ChildDied(f"the training process exited with code {code}", code) from None
        return frame[1:]
    finally:
        # The pipe is left to the garbage collector: a reader thread may still hold it until
        # the killed child's end closes and its read returns.
        _kill(process)


def _kill(process: BaseProcess) -> None:
    if process.is_alive() and process.pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
    process.join(5)
