"""The local kubelet does what a pod spec says, as a node's does: readiness only after
`successThreshold` successes, a liveness probe that fails `failureThreshold` times in a row
stops the container (preStop, SIGTERM) and starts it again, and a container still running when
`terminationGracePeriodSeconds` have passed since preStop began is killed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.deploy.containers import Site
from tests.deploy.kubelet import Kubelet
from tests.factories import wait_until

pytestmark = pytest.mark.anyio

BOUND = 30.0  # seconds to wait for what a step should bring about; never asserted on
SLEEPER = ["python", "-c", "import time; time.sleep(60)"]
STUBBORN = [
    "python",
    "-c",
    "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
    " print('ignoring SIGTERM', flush=True); time.sleep(60)",
]


def pod(container: dict[str, Any], grace: int = 30) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": "test"}},
        "spec": {"containers": [container], "terminationGracePeriodSeconds": grace},
    }


def exec_probe(command: list[str], **timing: int) -> dict[str, Any]:
    return {"exec": {"command": command}, "periodSeconds": 1, **timing}


async def test_a_pod_is_ready_after_success_threshold_successes(tmp_path: Path) -> None:
    kubelet = Kubelet([], Site(), tmp_path)
    readiness = exec_probe(["true"], successThreshold=3)
    running = await kubelet.run_pod(
        "ready", pod({"name": "c", "command": SLEEPER, "readinessProbe": readiness})
    )
    try:
        await kubelet.changes.until(lambda: running.ready, BOUND, "the pod to be ready")
        attempts = running.current["c"].probers["readiness"].log.attempts
        assert [ok for _, ok, _ in attempts] == [True, True, True]
    finally:
        await kubelet.shutdown()


async def test_a_failing_liveness_probe_restarts_the_container(tmp_path: Path) -> None:
    kubelet = Kubelet([], Site(), tmp_path)
    liveness = exec_probe(["false"], failureThreshold=2)
    spec = {
        "name": "c",
        "command": SLEEPER,
        "livenessProbe": liveness,
        "lifecycle": {"preStop": {"exec": {"command": ["true"]}}},
    }
    running = await kubelet.run_pod("live", pod(spec, grace=5))
    try:

        def stopped() -> bool:
            return bool(running.runs) and running.runs[0].exit_code is not None

        await kubelet.changes.until(stopped, BOUND, "the container to be stopped")
        first = running.runs[0]
        assert first.stop_reason == "probe failed"
        assert [ok for _, ok, _ in first.probers["liveness"].log.attempts] == [False, False]
        assert first.exit_code == -15 and not first.killed  # SIGTERM, after the preStop hook
        assert not first.prestop_failures
    finally:
        await kubelet.shutdown()


async def test_the_grace_period_ends_with_sigkill(tmp_path: Path) -> None:
    kubelet = Kubelet([], Site(), tmp_path)
    spec = {"name": "c", "command": STUBBORN, "lifecycle": {"preStop": {"sleep": {"seconds": 1}}}}
    running = await kubelet.run_pod("stubborn", pod(spec, grace=2))
    await wait_until(lambda: "ignoring" in running.log("c"), BOUND, "the handler to be set")
    await running.delete()
    run = running.runs[0]
    assert run.sigterm_at is not None and run.killed
    assert run.exit_code == -9
