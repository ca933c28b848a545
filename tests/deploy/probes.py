"""Container probes as the kubelet runs them: one loop per probe on a ticker of `periodSeconds`,
nothing before `initialDelaySeconds`, each attempt bounded by `timeoutSeconds`, and a result
that changes only after `successThreshold` successes or `failureThreshold` failures in a row.

httpGet: a GET on a fresh connection (the kubelet keeps none alive), success for 200-399;
exec: the command in the container's environment, success for exit status 0; tcpSocket: the
connection opens. Probes do not follow the kubelet's random start jitter (it applies only
right after the kubelet itself restarts)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2

# The kubelet's defaults for fields a probe leaves out.
DEFAULTS = {
    "initialDelaySeconds": 0,
    "periodSeconds": 10,
    "timeoutSeconds": 1,
    "successThreshold": 1,
    "failureThreshold": 3,
}
USER_AGENT = "kube-probe/1.33"


@dataclass
class Target:
    """Where a container's probes reach it: its ports on this machine and how to run a
    command inside it."""

    ports: Mapping[str | int, int]  # a containerPort's name or number → local port
    env: Mapping[str, str]
    cwd: Path
    argv: Callable[[list[str]], list[str]]  # a command as the container would resolve it


@dataclass
class ProbeLog:
    """Every attempt's outcome, for a test to read after the fact."""

    attempts: list[tuple[float, bool, str]] = field(default_factory=list)

    def record(self, ok: bool, detail: str) -> None:
        self.attempts.append((time.monotonic(), ok, detail))


def setting(spec: Mapping[str, Any], name: str) -> int:
    value = spec.get(name, DEFAULTS[name])
    assert isinstance(value, int), f"{name}: {value!r}"
    return value


async def attempt(spec: Mapping[str, Any], target: Target) -> tuple[bool, str]:
    """One attempt of the probe `spec`, within its timeout."""
    timeout = setting(spec, "timeoutSeconds")
    if "httpGet" in spec:
        return await _http_get(spec["httpGet"], target, timeout)
    if "exec" in spec:
        return await _exec(spec["exec"]["command"], target, timeout)
    if "tcpSocket" in spec:
        port = target.ports[spec["tcpSocket"]["port"]]
        try:
            async with asyncio.timeout(timeout):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
        except (OSError, TimeoutError) as exc:
            return False, repr(exc)
        writer.close()
        return True, "connected"
    raise AssertionError(f"a probe this kubelet cannot run: {sorted(spec)}")


async def _http_get(get: Mapping[str, Any], target: Target, seconds: int) -> tuple[bool, str]:
    assert get.get("scheme", "HTTP") == "HTTP", get
    # The host defaults to the pod's IP; every pod here is on loopback.
    url = f"http://{get.get('host', '127.0.0.1')}:{target.ports[get['port']]}{get.get('path', '/')}"
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*", "Connection": "close"}
    headers.update({h["name"]: h["value"] for h in get.get("httpHeaders", [])})
    try:
        async with httpx2.AsyncClient(timeout=seconds, trust_env=False) as client:
            response = await client.get(url, headers=headers)
    except httpx2.HTTPError as exc:
        return False, repr(exc)
    return 200 <= response.status_code < 400, f"HTTP {response.status_code}"


async def _exec(command: list[str], target: Target, seconds: int) -> tuple[bool, str]:
    process = await asyncio.create_subprocess_exec(
        *target.argv(command),
        cwd=target.cwd,
        env=dict(target.env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        async with asyncio.timeout(seconds):
            status = await process.wait()
    except TimeoutError:
        _kill(process.pid)
        await process.wait()
        return False, f"timed out after {seconds} s"
    except asyncio.CancelledError:  # the container is gone: so is what runs in it
        _kill(process.pid)
        raise
    return status == 0, f"exit status {status}"


def _kill(group: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)


class Prober:
    """One probe of one container run: `result` is None until the first verdict, then the
    current one; `on_change` is called on each change of verdict."""

    def __init__(
        self,
        kind: str,
        spec: Mapping[str, Any],
        target: Target,
        on_change: Callable[[], None],
    ) -> None:
        self.kind = kind
        self.spec = spec
        self.target = target
        self.result: bool | None = None
        self.on_change = on_change
        self.log = ProbeLog()
        self._trigger = asyncio.Event()
        if kind != "readiness":  # the API server refuses other thresholds for these
            assert setting(spec, "successThreshold") == 1, spec

    def trigger(self) -> None:
        """Probe now instead of at the next tick (the kubelet does it for readiness as soon
        as startup succeeds)."""
        self._trigger.set()

    async def run(self, started_at: float, may_probe: Callable[[], bool]) -> None:
        """Probes until cancelled; attempts only while `may_probe()` and once the initial
        delay has passed since `started_at`, as the kubelet's worker does on each tick."""
        period = setting(self.spec, "periodSeconds")
        delay = setting(self.spec, "initialDelaySeconds")
        successes = failures = 0
        tick = time.monotonic()
        while True:
            if may_probe() and time.monotonic() - started_at >= delay:
                ok, detail = await attempt(self.spec, self.target)
                self.log.record(ok, detail)
                successes, failures = (successes + 1, 0) if ok else (0, failures + 1)
                verdict = self.result
                if successes >= setting(self.spec, "successThreshold"):
                    verdict = True
                elif failures >= setting(self.spec, "failureThreshold"):
                    verdict = False
                if verdict is not self.result:
                    self.result = verdict
                    self.on_change()
            tick += period
            while tick <= time.monotonic():
                tick += period  # a slow attempt skips ticks, as a Go ticker drops them
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._trigger.wait(), tick - time.monotonic())
            self._trigger.clear()
