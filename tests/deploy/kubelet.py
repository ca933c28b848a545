"""The kubelet in a test: runs the pods that the rendered manifests describe as local processes
(see `tests/deploy/containers.py` for how a container becomes one, and what differs from a node).

Per container it does what a kubelet does: runs the probes exactly as declared
(`tests/deploy/probes.py`), with startup gating liveness and readiness and readiness probed at
once when startup succeeds; restarts a container whose liveness or startup probe fails, or that
exits, by the pod's `restartPolicy` (with the kubelet's back-off); and stops one like the
kubelet: the `preStop` hook, then SIGTERM, then SIGKILL (to everything the container started)
once `terminationGracePeriodSeconds`, counted from the start of preStop, have passed.

A pod is ready when every container is; a terminating pod is never ready, which takes it out
of its Services' endpoints at once (a cluster takes a moment to do the same: the preStop pause
is there to cover it). Nothing in a pod is scaled in time: a `sleep` of N seconds sleeps N."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.deploy.containers import ContainerProcess, PodEnvironment, Site, local_argv
from tests.deploy.probes import Prober, Target

BACKOFF_SECONDS = (10, 20, 40, 80, 160, 300)  # the kubelet's restart back-off
DEFAULT_GRACE_SECONDS = 30


class Changes:
    """Wakes whoever waits for a state of the pods each time any of it changes."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def next(self, within: float) -> None:
        """Returns at the next change, or after `within` seconds without one."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), within)

    async def until(self, predicate: Callable[[], bool], within: float, what: str) -> None:
        """Waits until `predicate()` holds; fails naming `what` after `within` seconds (a bound
        on waiting for something the test cannot be told about otherwise, never asserted on)."""
        deadline = time.monotonic() + within
        while not predicate():
            try:
                await asyncio.wait_for(self._event.wait(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise AssertionError(f"timed out after {within} s waiting for {what}") from None


@dataclass
class Run:
    """One run of one container: from its start to its exit."""

    container: ContainerProcess
    process: asyncio.subprocess.Process
    started_at: float
    probers: dict[str, Prober] = field(default_factory=dict)
    probe_failed: asyncio.Event = field(default_factory=asyncio.Event)
    sigterm_at: float | None = None
    killed: bool = False  # SIGKILLed at the end of its grace period
    stop_reason: str | None = None  # why the kubelet stopped it, if it did
    exit_code: int | None = None
    prestop_failures: list[str] = field(default_factory=list)

    @property
    def started(self) -> bool:
        prober = self.probers.get("startup")
        return self.exit_code is None and (prober is None or prober.result is True)

    @property
    def ready(self) -> bool:
        prober = self.probers.get("readiness")
        return self.started and (prober is None or prober.result is True)


class Pod:
    def __init__(
        self,
        kubelet: Kubelet,
        name: str,
        template: Mapping[str, Any],
        restart_policy: str | None = None,
    ) -> None:
        self.kubelet = kubelet
        self.name = name
        self.labels: dict[str, str] = dict(template.get("metadata", {}).get("labels", {}))
        self.spec: Mapping[str, Any] = template["spec"]
        self.restart_policy = restart_policy or self.spec.get("restartPolicy", "Always")
        self.grace = self.spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
        self.workdir = kubelet.workdir / name  # its containers' logs
        self.workdir.mkdir(parents=True)
        # Volumes live as long as the pod. They are kept short of the test's deep temporary
        # folder: a path there is too long for a Unix socket (the worker's forkserver makes
        # one in TMPDIR, an emptyDir) to be bound in.
        self.volumes = Path(tempfile.mkdtemp(prefix=f"{name}-"))
        self.environment = PodEnvironment(
            kubelet.objects, kubelet.site, name, self.labels, self.volumes
        )
        self.runs: list[Run] = []
        self.current: dict[str, Run] = {}
        self.terminating = False
        self.sigterm_sent = asyncio.Event()  # the first SIGTERM of its deletion
        self._deleted = asyncio.Event()
        self._supervisors: list[asyncio.Task[None]] = []

    @property
    def ready(self) -> bool:
        containers = self.spec["containers"]
        return (
            not self.terminating
            and len(self.current) == len(containers)
            and all(run.ready for run in self.current.values())
        )

    @property
    def finished(self) -> bool:
        self.check()
        return bool(self._supervisors) and all(task.done() for task in self._supervisors)

    def check(self) -> None:
        """Raises what went wrong in this kubelet while it ran the pod, if anything did."""
        for task in self._supervisors:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise AssertionError(f"the kubelet failed to run {self.name}") from task.exception()

    def port(self, name_or_number: str | int) -> int:
        """The local port of a containerPort of any of the pod's containers."""
        for run in self.current.values():
            if name_or_number in run.container.ports:
                return run.container.ports[name_or_number]
        raise AssertionError(f"{self.name} declares no port {name_or_number}")

    def log(self, container: str) -> str:
        path = self.workdir / f"{container}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def start(self) -> None:
        volumes = self.environment.volumes(self.spec)
        for container in self.spec.get("initContainers", []):
            process = self.environment.container(container, volumes)
            run = await self._start_process(process)
            status = await run.process.wait()
            run.exit_code = status
            assert status == 0, f"init container {container['name']} of {self.name} exited {status}"
        for container in self.spec["containers"]:
            task = asyncio.create_task(self._supervise(container, volumes))
            task.add_done_callback(lambda _: self.kubelet.changes.notify())
            self._supervisors.append(task)

    async def delete(self) -> None:
        """What deleting the pod does: out of the endpoints, then every container stopped."""
        self.terminating = True
        self._deleted.set()
        self.kubelet.changes.notify()
        await asyncio.gather(
            *(self._stop(run, self.grace, "deleted") for run in list(self.current.values()))
        )
        await asyncio.gather(*self._supervisors, return_exceptions=True)
        shutil.rmtree(self.volumes, ignore_errors=True)
        self.kubelet.changes.notify()

    async def _start_process(self, container: ContainerProcess) -> Run:
        with (self.workdir / f"{container.name}.log").open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                *container.argv,
                cwd=container.cwd,
                env=container.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # its process group stands for the container's cgroup
            )
        run = Run(container, process, time.monotonic())
        self.runs.append(run)
        return run

    async def _supervise(self, spec: Mapping[str, Any], volumes: Mapping[str, Path]) -> None:
        for restart in itertools.count():
            run = await self._start_process(self.environment.container(spec, volumes))
            self.current[spec["name"]] = run
            probing = self._probe(run)
            self.kubelet.changes.notify()
            exited = asyncio.ensure_future(run.process.wait())
            failed = asyncio.ensure_future(run.probe_failed.wait())
            await asyncio.wait([exited, failed], return_when=asyncio.FIRST_COMPLETED)
            failed.cancel()
            if not exited.done():  # a liveness or startup probe gave up on it
                await self._stop(run, self._grace_of(run), "probe failed")
            run.exit_code = await exited
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run.process.pid, signal.SIGKILL)  # the container ends with its PID 1
            for task in probing:
                task.cancel()
            await asyncio.gather(*probing, return_exceptions=True)
            self.kubelet.changes.notify()
            done = self.restart_policy == "Never" or (
                self.restart_policy == "OnFailure" and run.exit_code == 0
            )
            if done or self.terminating:
                return
            back_off = BACKOFF_SECONDS[min(restart, len(BACKOFF_SECONDS) - 1)]
            with contextlib.suppress(TimeoutError):  # a deletion ends the back-off at once
                await asyncio.wait_for(self._deleted.wait(), back_off)
            if self.terminating:
                return

    def _grace_of(self, run: Run) -> int:
        for prober in run.probers.values():
            if prober.result is False and "terminationGracePeriodSeconds" in prober.spec:
                value: int = prober.spec["terminationGracePeriodSeconds"]
                return value
        return int(self.grace)

    def _probe(self, run: Run) -> list[asyncio.Task[None]]:
        container = run.container
        target = Target(container.ports, container.env, container.cwd, local_argv)
        may: dict[str, Callable[[], bool]] = {
            # Startup and liveness stop once the pod is being deleted; readiness goes on.
            "startup": lambda: not run.started and not self.terminating,
            "liveness": lambda: run.started and not self.terminating,
            "readiness": lambda: run.started,
        }

        def changed(kind: str) -> Callable[[], None]:
            def on_change() -> None:
                prober = run.probers[kind]
                if kind == "startup" and prober.result and "readiness" in run.probers:
                    run.probers["readiness"].trigger()
                if kind in ("startup", "liveness") and prober.result is False:
                    run.probe_failed.set()
                self.kubelet.changes.notify()

            return on_change

        tasks = []
        for kind in ("startup", "liveness", "readiness"):
            spec = container.spec.get(f"{kind}Probe")
            if spec is not None:
                run.probers[kind] = Prober(kind, spec, target, changed(kind))
                tasks.append(asyncio.create_task(run.probers[kind].run(run.started_at, may[kind])))
        return tasks

    async def _stop(self, run: Run, grace: float, reason: str) -> None:
        """preStop, SIGTERM, and SIGKILL once `grace` seconds have passed since preStop began."""
        if run.stop_reason is not None or run.exit_code is not None:
            return
        run.stop_reason = reason
        deadline = time.monotonic() + grace
        hook = run.container.spec.get("lifecycle", {}).get("preStop")
        if hook is not None:
            try:
                async with asyncio.timeout(grace):
                    await self._pre_stop(hook, run)
            except TimeoutError:
                run.prestop_failures.append(f"still running after the {grace} s grace period")
        if run.process.returncode is None:
            run.sigterm_at = time.monotonic()
            run.process.send_signal(signal.SIGTERM)
        if reason == "deleted":
            self.sigterm_sent.set()
        try:
            await asyncio.wait_for(run.process.wait(), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            run.killed = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run.process.pid, signal.SIGKILL)

    async def _pre_stop(self, hook: Mapping[str, Any], run: Run) -> None:
        if "sleep" in hook:
            await asyncio.sleep(hook["sleep"]["seconds"])
            return
        assert "exec" in hook, f"a preStop hook this kubelet cannot run: {hook}"
        container = run.container
        process = await asyncio.create_subprocess_exec(
            *local_argv(hook["exec"]["command"]),
            cwd=container.cwd,
            env=container.env,
            stdin=asyncio.subprocess.DEVNULL,
        )
        if status := await process.wait():
            run.prestop_failures.append(f"exit status {status}")


class Kubelet:
    """The node: every pod it was asked to run, and the rendered objects they refer to."""

    def __init__(self, objects: list[dict[str, Any]], site: Site, workdir: Path) -> None:
        self.objects = objects
        self.site = site
        self.workdir = workdir
        self.pods: list[Pod] = []
        self.changes = Changes()
        self._names = itertools.count(1)

    def object(self, kind: str, name: str) -> dict[str, Any]:
        for obj in self.objects:
            if obj["kind"] == kind and obj["metadata"]["name"] == name:
                return obj
        raise AssertionError(f"no {kind} {name} among the rendered objects")

    async def run_pod(
        self, owner: str, template: Mapping[str, Any], restart_policy: str | None = None
    ) -> Pod:
        pod = Pod(self, f"{owner}-{next(self._names)}", template, restart_policy)
        self.pods.append(pod)
        await pod.start()
        return pod

    def endpoints(self, selector: Mapping[str, str]) -> list[Pod]:
        """The ready pods a Service with `selector` sends new connections to."""
        return [
            pod
            for pod in self.pods
            if pod.ready and all(pod.labels.get(k) == v for k, v in selector.items())
        ]

    async def shutdown(self) -> None:
        """Deletes every pod still running, as at the end of a test."""
        await asyncio.gather(*(pod.delete() for pod in self.pods if not pod.finished))
        for pod in self.pods:
            shutil.rmtree(pod.volumes, ignore_errors=True)
