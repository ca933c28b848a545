"""The limits a fit's child process puts itself under, seen from inside such a process."""

from __future__ import annotations

import subprocess
import sys

from tests.factories import ROOT

# RLIMIT_NPROC is never enforced for root: as root, the process becomes `nobody` first (after
# its imports, since the interpreter may live where nobody can read).
PROCESS_CAP = """
import os, resource, threading
import numpy  # imported before, as in the forkserver
from service.worker.limits import ChildLimits, apply
if os.getuid() == 0:
    os.setgid(65534)
    os.setuid(65534)
apply(ChildLimits(processes=3, memory_bytes=3 * 1024**3, cpu_seconds=50, threads=2))
print(resource.getrlimit(resource.RLIMIT_AS)[0])
print(resource.getrlimit(resource.RLIMIT_CPU))
print(os.environ["OPENBLAS_NUM_THREADS"], os.environ["LOKY_MAX_CPU_COUNT"])
from threadpoolctl import threadpool_info
print(sorted({pool["num_threads"] for pool in threadpool_info()}))
started = 0
try:
    for _ in range(50):
        threading.Thread(target=threading.Event().wait, daemon=True).start()
        started += 1
except RuntimeError as exc:
    print(started, exc)
"""


def test_a_child_gets_its_memory_cpu_and_thread_limits_and_a_process_cap() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROCESS_CAP],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    memory, cpu, variables, pools, refused = done.stdout.splitlines()
    assert memory == str(3 * 1024**3)
    assert cpu == "(50, 55)"
    assert variables == "2 2"
    assert pools == "[2]"
    started, message = refused.split(" ", 1)
    assert int(started) <= 3 and message == "can't start new thread"
