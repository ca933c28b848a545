"""A rolling restart drops nothing: the dev overlay's manifests, run by the local kubelet
(`tests/deploy/kubelet.py`) with two api replicas behind their Service and one worker, are
restarted pod by pod as their Deployments' strategies say while clients keep calling the api,
follow its event stream and wait for a training job. Every request gets its expected answer,
every stream the server ends ends cleanly and resumes where it stopped, the job in flight on
the worker finishes, and every process exits 0 within its grace period."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx2
import pytest

from service.devtools.keys import DEV_AUDIENCE, DEV_ISSUER, mint_token, write_dev_jwks
from tests.deploy.clients import Call, Follower, LoadClient
from tests.deploy.containers import Site
from tests.deploy.controllers import Deployment, run_job
from tests.deploy.kubelet import Kubelet, Pod
from tests.deploy.render import render
from tests.deploy.service_proxy import ServiceProxy
from tests.factories import HMAC_KEY, LOGREG, Servers, drop_database, make_settings, wait_until
from tests.iris import iris_records
from tests.worker import plugin_gated

pytestmark = pytest.mark.anyio

BOUND = 60.0  # seconds to wait for what a step should bring about; never asserted on
LOAD_CLIENTS = 3
FOLLOWERS = 2


@pytest.fixture
async def empty_database(servers: Servers) -> AsyncIterator[str]:
    """A new, empty database: the migrate Job creates the schema."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(servers.postgres)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    yield f"{servers.postgres.rpartition('/')[0]}/{name}"
    await drop_database(servers.postgres, name)


class Steps:
    """Prints each step with the seconds since the first, for the report of a failed run."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def __call__(self, what: str) -> None:
        print(f"{time.monotonic() - self.start:6.1f} s  {what}")


def is_last(event: dict[str, Any]) -> bool:
    return bool(event["type"] == "alias.moved" and event["data"]["alias"] == "done")


def pod_report(pods: list[Pod]) -> str:
    """What each pod's runs did, and its containers' last log lines, for a failure message."""
    lines = []
    for pod in pods:
        for run in pod.runs:
            lines.append(
                f"{pod.name}/{run.container.name}: exit {run.exit_code}, killed {run.killed},"
                f" stopped: {run.stop_reason}, preStop failures {run.prestop_failures}"
            )
            for kind, prober in run.probers.items():
                lines += [
                    f"  {kind} +{at - run.started_at:.1f} s: {ok} {detail}"
                    for at, ok, detail in prober.log.attempts
                ]
        for container in pod.spec["containers"]:
            lines += [f"  | {line}" for line in pod.log(container["name"]).splitlines()[-15:]]
    return "\n".join(lines)


async def test_a_rolling_restart_under_load_drops_nothing(
    servers: Servers,
    empty_database: str,
    queue_name: str,
    redis_cleanup: None,
    tmp_path: Path,
) -> None:
    # What an operator creates before `kubectl apply -k` (README): the Secret and the dev
    # JWKS; tokens are minted with the development key's private half, as `service token` does.
    key_file = tmp_path / "idp" / "dev-jwk.json"
    jwks = write_dev_jwks(key_file)
    auth = make_settings(
        auth={"issuer": DEV_ISSUER, "audience": DEV_AUDIENCE, "dev_key_file": str(key_file)}
    ).auth
    token = mint_token(auth, "operator", ["admin"], 900)
    site = Site(
        secrets={
            "models-secrets": {
                # One login role (the test server's) owns the schema and serves.
                "database-url": empty_database,
                "migrate-database-url": empty_database,
                "redis-url": servers.redis,
                "hmac-key": HMAC_KEY,
            }
        },
        config_maps={"models-dev-jwks": {"dev-jwks.json": jwks.read_text()}},
        # The test's own queue, and a model type whose fit waits for the test's signal.
        env={
            "SERVICE__REDIS__QUEUE_NAME": queue_name,
            "SERVICE__MODELS__PLUGINS": json.dumps([plugin_gated.__name__]),
        },
    )
    step = Steps()
    kubelet = Kubelet(render("dev"), site, tmp_path / "node")
    service = ServiceProxy(kubelet, "models-api")
    tasks: list[asyncio.Task[None]] = []
    try:
        assert await run_job(kubelet, "models-migrate", BOUND) == [0], pod_report(kubelet.pods)
        step("migrated")
        # Two replicas, as `kubectl scale` (or the production overlay) would have them.
        api = Deployment(kubelet, "models-api", replicas=2)
        worker = Deployment(kubelet, "models-worker")
        await asyncio.gather(api.scale(BOUND), worker.scale(BOUND))
        await service.start()
        step("api and worker available")

        headers = {"authorization": f"Bearer {token}"}
        async with httpx2.AsyncClient(
            base_url=service.url, headers=headers, timeout=30, trust_env=False
        ) as client:
            held_job, gate = await _prepare(client, tmp_path)

            step("prepared")
            followers = [Follower(service.url, token, is_last) for _ in range(FOLLOWERS)]
            following = [asyncio.create_task(f.run()) for f in followers]
            tasks += following
            subscribed = [f.subscribed for f in followers]
            await wait_until(lambda: all(s.is_set() for s in subscribed), BOUND, "the streams")
            calls = [
                [
                    Call("POST", "/models/iris/predict", 200, {"data": iris_records()[:3]}),
                    Call("GET", "/models/iris", 200),
                    Call("GET", f"/jobs/{held_job}", 200),
                    Call("PUT", f"/models/iris/aliases/client-{i}", 200, {"version": 1}),
                ]
                for i in range(LOAD_CLIENTS)
            ]
            clients = [LoadClient(service.url, token, c) for c in calls]
            stop = asyncio.Event()
            loading = [asyncio.create_task(c.run(stop)) for c in clients]
            tasks += loading

            old_api = list(api.pods)
            step("load and streams running; api rollout")
            before = sum(len(c.outcomes) for c in clients)
            await api.restart(within=2 * BOUND)
            during_rollout = sum(len(c.outcomes) for c in clients) - before
            step("api rolled out; worker rollout")
            old_worker = list(worker.pods)
            rolling = asyncio.create_task(worker.restart(within=2 * BOUND))
            tasks.append(rolling)
            # The held fit goes on once its worker has been told to stop: it is in flight then.
            await asyncio.wait_for(old_worker[0].sigterm_sent.wait(), BOUND)
            gate.touch()
            step("old worker told to stop; gate open")
            await rolling
            step("worker rolled out")

            async def finished() -> bool:
                job = (await client.get(f"/jobs/{held_job}")).json()
                return job["status"] not in ("queued", "running")

            await wait_until(finished, BOUND, "the held job to finish")
            stop.set()
            await asyncio.gather(*loading)
            step("held job finished; load stopped")
            response = await client.put("/models/iris/aliases/done", json={"version": 1})
            assert response.status_code == 200, response.text
            await asyncio.wait_for(asyncio.gather(*following), BOUND)
            step("streams followed to the end")
            job = (await client.get(f"/jobs/{held_job}")).json()

        replay = Follower(service.url, token, is_last)
        await asyncio.wait_for(replay.run(), BOUND)
        step("replayed")
        await kubelet.shutdown()
        step("every pod deleted")
        print(pod_report(kubelet.pods))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await kubelet.shutdown()
        await service.stop()

    outcomes = [o for c in clients for o in c.outcomes]
    step(
        f"{len(outcomes)} requests ({during_rollout} during the api rollout), "
        f"{len(replay.ids)} events, streams ended by the server: {[len(f.ends) for f in followers]}"
    )
    # The load went on through the rollout, and reached every api pod, the replaced ones and
    # their replacements.
    assert during_rollout > 0
    assert set(service.connections) == {p.name for p in old_api + api.pods}, service.connections
    assert job["status"] == "succeeded", job

    for follower in followers:
        assert follower.statuses == [200] * len(follower.statuses)
        # Every stream of a replaced pod was ended by the server, at a message boundary,
        # after its closing comment; the follower reconnected and missed nothing.
        ends = follower.ends
        assert ends, "no stream was ended by the server"
        assert all(e.closing and e.complete and e.error is None for e in ends), ends
        assert follower.ids == replay.ids, (follower.ids, replay.ids)
        assert [e.data for e in follower.events] == [e.data for e in replay.events]

    pods = [pod for pod in kubelet.pods if not pod.name.startswith("models-migrate")]
    assert len(pods) == 2 * len(old_api) + 2 * len(old_worker)
    report = pod_report(kubelet.pods)
    for pod in pods:
        # One run per container: no probe ever failed it, nothing restarted it.
        assert len(pod.runs) == len(pod.spec["containers"]), report
        for run in pod.runs:
            assert run.stop_reason == "deleted" and not run.killed, report
            assert run.exit_code == 0 and not run.prestop_failures, report

    failed = [o for o in outcomes if o.failed]
    assert not failed, f"{len(failed)} of {len(outcomes)} requests failed: {failed[:10]}"


async def _prepare(client: httpx2.AsyncClient, tmp_path: Path) -> tuple[str, Path]:
    """A trained model to predict with, and a training job held in flight on the worker
    until its gate file appears: (job id, gate)."""
    response = await client.post(
        "/models",
        json={"name": "iris", "model_type": LOGREG, "target": "species"},
    )
    assert response.status_code == 201, response.text
    response = await client.post("/models/iris/train", json={"data": iris_records()})
    assert response.status_code == 202, response.text
    trained = response.json()["id"]

    async def done(job_id: str, status: str) -> bool:
        job = (await client.get(f"/jobs/{job_id}")).json()
        assert job["status"] in ("queued", "running", status), job["error"]
        return bool(job["status"] == status)

    await wait_until(lambda: done(trained, "succeeded"), BOUND, "the first training")

    gate = tmp_path / "gate"
    model = {"name": "held", "model_type": plugin_gated.NAME, "target": "y"}
    response = await client.post("/models", json={**model, "settings": {"gate": str(gate)}})
    assert response.status_code == 201, response.text
    # Fewer rows than worker.eval_min_rows: one fit, which waits for the gate.
    rows = [{"x": float(i), "y": float(i)} for i in range(10)]
    response = await client.post("/models/held/train", json={"data": rows})
    assert response.status_code == 202, response.text
    held: str = response.json()["id"]
    await wait_until(lambda: done(held, "running"), BOUND, "the held job to start")
    return held, gate
