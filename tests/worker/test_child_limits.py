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
apply(ChildLimits(processes=3, memory_bytes=3 * 1024**3, cpu_seconds=50, threads=1))
print(resource.getrlimit(resource.RLIMIT_AS)[0])
print(resource.getrlimit(resource.RLIMIT_CPU))
print(os.environ["OPENBLAS_NUM_THREADS"], os.environ["LOKY_MAX_CPU_COUNT"])
import gc
gc.collect()
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
    assert variables == "1 1"
    assert pools == "[1]"  # after the limiter itself was garbage: it stays in force
    started, message = refused.split(" ", 1)
    assert int(started) <= 3 and message == "can't start new thread"


# A real fit whose `n_jobs` threads are refused by the process cap. Modules the fit imports
# lazily are imported before the process becomes `nobody`, who may not read the interpreter's.
REFUSED_FIT = """
import os
import multiprocessing.dummy, multiprocessing.pool, concurrent.futures.thread
import msgspec
from service.domain import batches
from service.worker import fitting
from service.worker.limits import ChildLimits, apply
from tests.iris import IRIS_FEATURES, iris_records

request = fitting.FitRequest(
    model_type="sklearn.ensemble.RandomForestClassifier",
    settings={"n_estimators": 20, "n_jobs": 2},
    features=IRIS_FEATURES,
    target="species",
    parameters={},
    batches=[batches.encode(batches.from_records(iris_records()))],
    threads=2,
)
if os.getuid() == 0:
    os.setgid(65534)
    os.setuid(65534)
apply(ChildLimits(processes=1, threads=2))
reply = fitting.fit_in_child(msgspec.msgpack.encode(request), lambda note: None)
outcome = msgspec.msgpack.decode(reply, type=fitting.FitOutcome)
print(outcome.ok, outcome.error_type, outcome.limit)
"""


def test_a_fit_refused_a_thread_replies_that_it_hit_the_process_limit() -> None:
    done = subprocess.run(
        [sys.executable, "-c", REFUSED_FIT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.split() == ["False", "resource_limit", "processes"], done.stderr[-2000:]
