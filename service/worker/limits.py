"""The limits a fit's child process runs under, and how a fit that hit one is described.

Applied in the child before it reads its request (`apply`):

- memory: `RLIMIT_AS` (address space) at `worker.fit_memory_bytes`. An allocation beyond it
  fails (numpy and Python raise MemoryError), so the child replies instead of the kernel's
  out-of-memory killer choosing a victim, possibly PostgreSQL.
- CPU time: `RLIMIT_CPU` at `worker.fit_cpu_seconds` (SIGXCPU, whose default action ends the
  child; the hard limit a few seconds later is a SIGKILL for code that blocks SIGXCPU).
- threads: BLAS/OpenMP pools cut to `worker.fit_threads` with threadpoolctl (numpy is already
  imported by the forkserver, so the environment alone comes too late), and the usual variables
  set for libraries loaded later and for joblib's worker processes (`LOKY_MAX_CPU_COUNT` makes
  `n_jobs=-1` mean `fit_threads`); `n_jobs` settings are clamped where the model is built.
- processes: `RLIMIT_NPROC` only when `worker.fit_processes` > 0, as the tasks (processes and
  threads) the child's user has when it starts plus that many. Linux counts every task of the
  real uid (every container sharing it too) and never enforces it for root, so it is off by
  default: the process cap that always works is the container's PID limit.
- no core files: a fit killed by SIGXCPU would otherwise dump its whole heap.
"""

from __future__ import annotations

import os
import resource
import signal
from dataclasses import dataclass
from pathlib import Path

from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from service.settings import WorkerSettings

RESOURCE_LIMIT = "resource_limit"
CPU_GRACE_SECONDS = 5
_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "LOKY_MAX_CPU_COUNT",
)


@dataclass(frozen=True, slots=True)
class ChildLimits:
    memory_bytes: int = 0  # 0: none, for each field
    cpu_seconds: int = 0
    threads: int = 0
    processes: int = 0

    @classmethod
    def of(cls, worker: WorkerSettings) -> ChildLimits:
        return cls(
            memory_bytes=worker.fit_memory_bytes,
            cpu_seconds=worker.fit_cpu_seconds,
            threads=worker.fit_threads,
            processes=worker.fit_processes,
        )


def apply(limits: ChildLimits) -> None:
    """Puts this process under `limits`; call it first thing in the child."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if limits.threads:
        for name in _THREAD_VARIABLES:
            os.environ[name] = str(limits.threads)
        threadpool_limits(limits=limits.threads)  # stays in force for the child's life
    if limits.cpu_seconds:
        hard = limits.cpu_seconds + CPU_GRACE_SECONDS
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, hard))
    if limits.processes:
        allowed = tasks_of_user(os.getuid()) + limits.processes
        resource.setrlimit(resource.RLIMIT_NPROC, (allowed, allowed))
    if limits.memory_bytes:  # last: the steps above may still allocate
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))


def tasks_of_user(uid: int) -> int:
    """Processes and threads of `uid` now, as RLIMIT_NPROC counts them."""
    count = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":", 1) for line in status.read_text().splitlines() if ":" in line
            )
        except OSError:  # the process ended while we looked
            continue
        if int(fields.get("Uid", "-1").split()[0]) == uid:
            count += int(fields.get("Threads", "1"))
    return count


def exit_kind(exitcode: int | None) -> str | None:
    """Which limit a child that died without replying hit, or None when it was not a limit
    (then its death is an infrastructure failure, retried)."""
    if exitcode == -signal.SIGXCPU:
        return "cpu"
    if exitcode == -signal.SIGKILL:
        # Not by us (a cancel kills the child only once nobody waits for its reply): the
        # kernel's out-of-memory killer, a container's memory limit, or the CPU hard limit.
        return "killed"
    if exitcode in (-signal.SIGSEGV, -signal.SIGBUS, -signal.SIGABRT):
        # Native code that cannot allocate under the address-space limit often ends this way,
        # and a crash on the same rows and settings would only repeat on every retry.
        return "crashed"
    return None


def message(kind: str, worker: WorkerSettings) -> str:
    """The job's error message for a limit of kind `memory`, `cpu`, `processes`, `crashed` or
    `killed`."""
    memory = size(worker.fit_memory_bytes) if worker.fit_memory_bytes else "off"
    if kind == "memory":
        if not worker.fit_memory_bytes:
            return "the fit ran out of memory"
        return f"the fit exceeded worker.fit_memory_bytes ({memory})"
    if kind == "cpu":
        return f"the fit exceeded worker.fit_cpu_seconds ({worker.fit_cpu_seconds} s of CPU time)"
    if kind == "processes":
        cap = (
            f"worker.fit_processes ({worker.fit_processes})" if worker.fit_processes else "a limit"
        )
        return (
            f"the fit was refused a new thread or process by {cap}; n_jobs and the BLAS/OpenMP"
            f" threads are capped at worker.fit_threads ({worker.fit_threads})"
        )
    if kind == "crashed":
        return (
            "the fit crashed in native code (a segmentation fault or an abort), most likely"
            f" unable to allocate memory under worker.fit_memory_bytes ({memory})"
        )
    return (
        "the fit was killed (SIGKILL), most likely for memory: it exceeded the memory the "
        f"worker's machine or container allows (worker.fit_memory_bytes is {memory})"
    )


def size(n: int) -> str:
    """`n` bytes for a person: 2 GiB, 512 MiB, 1000 bytes."""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f} {unit}" if value.is_integer() else f"{value:.1f} {unit}"
    return f"{n} bytes"
