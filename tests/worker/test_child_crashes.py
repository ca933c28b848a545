"""A fit child that crashes in native code fails as a resource limit, not as an outage to retry."""

from __future__ import annotations

import signal

import pytest

from service.settings import WorkerSettings
from service.worker import limits
from service.worker.child import ChildDied, run_in_child

pytestmark = pytest.mark.anyio


async def test_a_child_that_segfaults_is_a_resource_limit_named_in_its_message() -> None:
    with pytest.raises(ChildDied) as died:
        await run_in_child("tests.worker.crashing.segfault", b"")
    assert died.value.exitcode == -signal.SIGSEGV
    kind = limits.exit_kind(died.value.exitcode)
    assert kind == "crashed"
    text = limits.message(kind, WorkerSettings(fit_memory_bytes=2 * 1024**3))
    assert "worker.fit_memory_bytes (2 GiB)" in text and "segmentation fault" in text


def test_a_child_that_exits_on_its_own_is_still_an_outage_to_retry() -> None:
    assert limits.exit_kind(1) is None and limits.exit_kind(-signal.SIGTERM) is None
