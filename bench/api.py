"""The few API calls the benches make: create a model, train it, wait for its job."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx2
import msgspec

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


def decode(response: httpx2.Response) -> Any:
    return msgspec.json.decode(response.content)


async def create_model(
    client: httpx2.AsyncClient, name: str, model_type: str, **extra: Any
) -> None:
    body = msgspec.json.encode({"name": name, "model_type": model_type, **extra})
    response = await client.post(
        "/models", content=body, headers={"content-type": "application/json"}
    )
    if response.status_code != 201:
        raise RuntimeError(f"create {name}: {response.status_code} {response.text}")


async def submit(client: httpx2.AsyncClient, name: str, body: bytes) -> dict[str, Any]:
    """POST /models/{name}/train with a ready-encoded body; the queued job."""
    response = await client.post(
        f"/models/{name}/train", content=body, headers={"content-type": "application/json"}
    )
    if response.status_code != 202:
        raise RuntimeError(f"train {name}: {response.status_code} {response.text[:500]}")
    job: dict[str, Any] = decode(response)
    return job


async def wait_job(
    client: httpx2.AsyncClient, job_id: str, *, poll: float = 0.005, within: float = 600.0
) -> dict[str, Any]:
    """Poll GET /jobs/{id} until the job is finished; raise unless it succeeded."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        job: dict[str, Any] = decode(await client.get(f"/jobs/{job_id}"))
        if job["status"] in TERMINAL:
            if job["status"] != "succeeded":
                raise RuntimeError(f"job {job_id} {job['status']}: {job.get('error')}")
            return job
        await asyncio.sleep(poll)
    raise RuntimeError(f"job {job_id} not finished within {within:.0f} s")


async def train(
    client: httpx2.AsyncClient, name: str, records: list[dict[str, Any]], poll: float = 0.05
) -> dict[str, Any]:
    job = await submit(client, name, msgspec.json.encode({"data": records}))
    return await wait_job(client, job["id"], poll=poll)
