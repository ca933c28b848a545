"""Server-Sent Event streams: `GET /jobs/{id}/events` follows a job to its end, `GET /events`
carries the tenant's outbox events and resumes after `Last-Event-ID`, heartbeats keep a quiet
stream alive, a caller's streams are capped, a lost listener loses no event, and a draining
server ends its streams cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx2
import msgspec
import pytest

from service.estimators.phases import PROGRESS, Phase
from service.repositories.wakeups import APPLICATION_NAME
from service.settings import Settings
from tests.factories import (
    HMAC_KEY,
    LOGREG,
    ROOT,
    AppClient,
    ClientFactory,
    Worker,
    burst_worker,
    json_of,
    make_dataset,
    make_model,
    run_job,
    submit,
    tenant_app,
    wait_until,
)
from tests.iris import iris_records
from tests.sse import SseMessage, SseStream, open_stream, parse
from tests.tcpproxy import free_port
from tests.worker import plugin_gated

pytestmark = pytest.mark.anyio


def with_streams(settings: Settings, **streams: Any) -> Settings:
    return msgspec.structs.replace(
        settings, streams=msgspec.structs.replace(settings.streams, **streams)
    )


async def streaming(client: AppClient, path: str, **kwargs: Any) -> SseStream:
    stream = await open_stream(client.app, path, **kwargs)
    assert stream.status == 200, stream.body
    assert stream.headers["content-type"].startswith("text/event-stream")
    return stream


def positions(messages: list[SseMessage]) -> list[int]:
    return [int(m.id or "") for m in messages]


async def test_a_job_stream_shows_queued_running_progress_and_succeeded_then_ends(
    client_factory: ClientFactory, settings: Settings, tmp_path: Path
) -> None:
    models = msgspec.structs.replace(settings.models, plugins=[plugin_gated.__name__])
    gated = msgspec.structs.replace(settings, models=models)
    client = await client_factory(gated)
    gate = tmp_path / "gate"
    await make_model(client, "gated", plugin_gated.NAME, target="y", settings={"gate": str(gate)})
    rows = [{"x": float(i), "y": 2.0 * i} for i in range(40)]  # enough to hold some out
    job = await submit(client, "gated", "train", {"data": rows})
    stream = await streaming(client, f"/jobs/{job['id']}/events")
    run_worker = burst_worker(gated)

    async def work() -> None:
        await run_worker()

    worker = asyncio.create_task(work())
    seen: list[dict[str, Any]] = []
    try:
        while (message := await stream.next()) is not None:
            if message.comment is not None:
                continue
            assert message.event == "job"
            seen.append(message.json())
            progress = seen[-1]["progress"]
            # Each fit waits at the gate until the stream has shown the phase that runs it.
            for phase in (Phase.EVALUATING, Phase.FITTING):
                if progress is not None and math.isclose(progress, PROGRESS[phase], rel_tol=1e-6):
                    gate.touch()
        await worker
    finally:
        if not worker.done():
            worker.cancel()
            with contextlib.suppress(BaseException):
                await worker
    assert stream.ended
    statuses = [j["status"] for j in seen]
    assert statuses[0] == "queued" and statuses[-1] == "succeeded"
    assert "running" in statuses
    assert statuses.index("running") < statuses.index("succeeded")
    assert seen[-1] == json_of(await client.get(f"/jobs/{job['id']}"))
    assert all(a != b for a, b in zip(seen, seen[1:], strict=False))  # only changes are sent
    running = [j["progress"] for j in seen if j["status"] == "running" and j["progress"]]
    assert running == sorted(running) and len(running) >= 2


async def test_a_stream_of_a_finished_job_sends_it_once_and_ends(
    client: AppClient, run_worker: Worker
) -> None:
    await make_model(client, "iris", LOGREG, target="species")
    done = await run_job(client, run_worker, "iris", "train", {"data": iris_records()})
    response = await client.get(f"/jobs/{done['id']}/events")
    assert response.status_code == 200
    assert response.text.endswith("\n\n") and response.text.count("\n\n") == 1
    message = parse(response.text.removesuffix("\n\n"))
    assert (message.event, message.json()) == ("job", done)


async def test_events_carry_job_succeeded_and_version_created_with_rising_ids(
    client: AppClient, run_worker: Worker
) -> None:
    await make_model(client, "iris", LOGREG, target="species")
    stream = await streaming(client, "/events")
    done = await run_job(client, run_worker, "iris", "train", {"data": iris_records()})
    first, second = await stream.next_event(), await stream.next_event()
    await stream.close()
    by_type = {m.event: m.json() for m in (first, second)}
    assert set(by_type) == {"job.succeeded", "version.created"}
    assert positions([first, second]) == sorted(positions([first, second]))
    job_event = by_type["job.succeeded"]
    assert set(job_event) == {"id", "type", "timestamp", "tenant", "data"}
    assert (job_event["type"], job_event["tenant"]) == ("job.succeeded", "default")
    assert job_event["data"]["id"] == done["id"]
    assert job_event["data"]["status"] == "succeeded"
    version = by_type["version.created"]["data"]
    assert (version["model"], version["version"]) == ("iris", 1)


async def test_a_stream_without_last_event_id_starts_at_the_current_end(
    client: AppClient,
) -> None:
    await make_dataset(client, "before", [{"x": 1}])
    stream = await streaming(client, "/events")
    await make_dataset(client, "after", [{"x": 1}])
    message = await stream.next_event()
    await stream.close()
    assert message.json()["data"]["name"] == "after"


async def test_resuming_with_last_event_id_replays_what_was_missed_none_twice(
    client_factory: ClientFactory, settings: Settings
) -> None:
    client = await client_factory(with_streams(settings, replay_batch=2))  # several batches
    stream = await streaming(client, "/events")
    await make_dataset(client, "seen", [{"x": 1}])
    seen = await stream.next_event()
    await stream.close()
    for i in range(5):  # written while the client is away
        await make_dataset(client, f"missed-{i}", [{"x": i}])
    resumed = await streaming(client, "/events", headers={"Last-Event-ID": seen.id or ""})
    replayed = [await resumed.next_event() for _ in range(5)]
    await make_dataset(client, "live", [{"x": 1}])
    live = await resumed.next_event()
    await resumed.close()
    names = [m.json()["data"]["name"] for m in [*replayed, live]]
    assert names == [f"missed-{i}" for i in range(5)] + ["live"]
    ids = positions([seen, *replayed, live])
    assert ids == sorted(set(ids))
    by_query = await streaming(client, "/events", params={"last_event_id": str(ids[-2])})
    assert (await by_query.next_event()).json()["data"]["name"] == "live"
    await by_query.close()


async def test_a_malformed_last_event_id_is_a_400_naming_it(client: AppClient) -> None:
    response = await client.get("/events", headers={"Last-Event-ID": "seven"})
    assert response.status_code == 400
    assert json_of(response)["errors"][0]["loc"] == "Last-Event-ID"
    response = await client.get("/events", params={"last_event_id": "-1"})
    assert response.status_code == 400
    assert json_of(response)["errors"][0]["loc"] == "last_event_id"


async def test_another_tenants_events_and_jobs_never_reach_a_stream(
    client_factory: ClientFactory, settings: Settings, tmp_path: Path
) -> None:
    client, headers = await tenant_app(client_factory, settings, tmp_path)
    acme, globex = headers("acme"), headers("globex")
    response = await client.post(
        "/datasets", json={"name": "d", "data": [{"x": 1}]}, headers=globex
    )
    assert response.status_code == 201
    model = {"name": "m", "model_type": LOGREG, "target": "species"}
    assert (await client.post("/models", json=model, headers=globex)).status_code == 201
    theirs = await client.post("/models/m/train", json={"data": iris_records()}, headers=globex)
    job = json_of(theirs)
    refused = await client.get(f"/jobs/{job['id']}/events", headers=acme)
    assert refused.status_code == 404
    assert refused.headers["content-type"] == "application/problem+json"
    stream = await streaming(client, "/events", headers={**acme, "Last-Event-ID": "0"})
    for name in ("g1", "g2"):
        body = {"name": name, "data": [{"x": 1}]}
        assert (await client.post("/datasets", json=body, headers=globex)).status_code == 201
    body = {"name": "mine", "data": [{"x": 1}]}
    assert (await client.post("/datasets", json=body, headers=acme)).status_code == 201
    message = await stream.next_event()  # globex's events, replayed or live, are skipped
    await stream.close()
    assert (message.json()["tenant"], message.json()["data"]["name"]) == ("acme", "mine")


async def test_a_caller_over_its_stream_cap_gets_a_429_with_retry_after(
    client_factory: ClientFactory, settings: Settings, tmp_path: Path
) -> None:
    capped = with_streams(settings, max_streams_per_caller=2)
    client, headers = await tenant_app(client_factory, capped, tmp_path)
    alice = headers("acme", "alice")
    held = [await streaming(client, "/events", headers=alice) for _ in range(2)]
    refused = await open_stream(client.app, "/events", headers=alice)
    assert refused.status == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert int(refused.headers["retry-after"]) > 0
    job_refused = await client.get(f"/jobs/{uuid.uuid4()}/events", headers=alice)
    assert job_refused.status_code == 429  # counted before anything is read
    bob = await streaming(client, "/events", headers=headers("acme", "bob"))  # a caller apiece
    other_tenant = await streaming(client, "/events", headers=headers("globex", "alice"))
    await held[0].close()  # a closed stream frees its place
    again = await streaming(client, "/events", headers=alice)
    for stream in (held[1], bob, other_tenant, again):
        await stream.close()
    metrics = (await client.get("/metrics")).text
    assert 'sse_open_streams{route="/events"} 0.0' in metrics


async def test_a_quiet_stream_sends_keep_alive_comments(
    client_factory: ClientFactory, settings: Settings
) -> None:
    client = await client_factory(with_streams(settings, heartbeat_seconds=0.05))
    stream = await streaming(client, "/events")
    beats = [await stream.next() for _ in range(2)]
    await stream.close()
    assert [b.comment if b else None for b in beats] == ["keep-alive", "keep-alive"]


async def test_events_written_while_the_listener_is_lost_still_reach_the_stream(
    client: AppClient, raw: asyncpg.Connection
) -> None:
    hub = client.services.streams.hub
    await wait_until(hub.listening.is_set, 30, "the stream listener to connect")
    stream = await streaming(client, "/events")
    terminated = await raw.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE application_name = $1 AND datname = current_database()",
        APPLICATION_NAME,
    )
    assert terminated == 1
    await make_dataset(client, "while-away", [{"x": 1}])  # its NOTIFY may reach no one
    message = await stream.next_event()
    await wait_until(hub.listening.is_set, 30, "the stream listener to reconnect")
    await make_dataset(client, "after", [{"x": 1}])
    later = await stream.next_event()
    await stream.close()
    assert [message.json()["data"]["name"], later.json()["data"]["name"]] == ["while-away", "after"]


async def test_a_draining_server_ends_its_streams_with_a_closing_comment(
    client: AppClient,
) -> None:
    await make_model(client, "iris", LOGREG, target="species")
    job = await submit(client, "iris", "train", {"data": iris_records()})
    streams = [
        await streaming(client, "/events"),
        await streaming(client, f"/jobs/{job['id']}/events"),
    ]
    client.services.streams.hub.drain()
    for stream in streams:
        rest = await stream.rest()
        assert stream.ended
        assert rest[-1].comment is not None and rest[-1].comment.startswith("closing")
        await stream.close()


async def test_sigterm_ends_open_streams_cleanly_instead_of_holding_the_drain(
    settings: Settings,
) -> None:
    """A real api process: a stream never ends by itself, so without the drain it would be cut
    only after the graceful timeout (set far beyond the test's waits here), its body incomplete."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVICE__")}
    env.update(
        {
            "SERVICE__HTTP__BIND": f"127.0.0.1:{port}",
            "SERVICE__HTTP__GRACEFUL_TIMEOUT": "600",
            "SERVICE__DATABASE__URL": settings.database.url,
            "SERVICE__REDIS__URL": settings.redis.url,
            "SERVICE__AUTH__MODE": "disabled",
            "SERVICE__ARTIFACTS__HMAC_KEY": HMAC_KEY,
        }
    )
    api = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service",
        "api",
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:

            async def ready() -> bool:
                assert api.returncode is None, f"the api exited with {api.returncode}"
                try:
                    return (await http.get("/livez")).status_code == 200
                except httpx2.TransportError:
                    return False

            await wait_until(ready, 30, "the api to answer")
            lines: list[str] = []
            async with (
                http.stream("GET", "/events") as events,
                http.stream("GET", "/events", headers={"Last-Event-ID": "0"}) as replayed,
            ):
                assert events.status_code == replayed.status_code == 200
                api.send_signal(signal.SIGTERM)
                # Both bodies end, complete (httpx2 raises on a body cut short).
                lines = [line async for line in events.aiter_lines()]
                lines += [line async for line in replayed.aiter_lines()]
        assert [line for line in lines if line.startswith(": closing")] == [lines[0]] * 2
        assert await asyncio.wait_for(api.wait(), 30) == 0
    finally:
        if api.returncode is None:
            api.kill()
            await api.wait()
