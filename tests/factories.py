"""Helpers that build what tests need (settings, models, jobs, datasets) and wait for what they
expect. Tests import shared helpers from here, never from another test module or a conftest."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx2
import msgspec
import pytest
from starlette.types import ASGIApp

from service.artifacts.keys import Keyring
from service.auth.backend import BearerAuthenticator
from service.devtools.keys import DEV_AUDIENCE, DEV_ISSUER, mint_token, write_dev_jwks
from service.domain.errors import InvalidInput
from service.http.state import Services
from service.settings import AuthSettings, Settings, convert_settings
from tests.auth.idp import AUDIENCE, CLIENT_ID, CLIENT_SECRET, INTROSPECTION_URL, ISSUER, JWKS_URL

ROOT = Path(__file__).resolve().parents[1]
HMAC_KEY = "test-hmac-key-0123456789abcdef0123456789abcdef"
LOGREG = "sklearn.linear_model.LogisticRegression"
CSV = {"content-type": "text/csv"}

Worker = Callable[[], Awaitable[None]]


def burst_worker(settings: Settings) -> Worker:
    """An in-process burst worker for `settings`: each call runs it until the queue is empty."""
    from service.worker.app import build_worker

    async def run() -> None:
        worker = build_worker(
            settings, burst=True, handle_signals=False, serve_metrics=False, poll_delay=0.01
        )
        try:
            await worker.main()
        finally:
            await worker.close()

    return run


"""The `run_worker` fixture: runs an in-process burst worker until the test's queue is empty."""


# -- waiting ------------------------------------------------------------------------------------


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]],
    within: float,
    what: str,
    interval: float = 0.02,
) -> None:
    """Polls `predicate` until it holds; fails naming `what` once `within` seconds pass.

    The deadline only bounds a wait for something the test cannot be told about directly; the
    test never asserts how long it took."""
    deadline = time.monotonic() + within
    while True:
        outcome = predicate()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(interval)


def errors_of(caught: pytest.ExceptionInfo[InvalidInput]) -> dict[str, str]:
    """The message of each invalid field of a caught InvalidInput, by its location."""
    return {error.loc: error.msg for error in caught.value.errors}


# -- settings and servers -----------------------------------------------------------------------


@dataclass(frozen=True)
class Servers:
    postgres: str  # DSN of the server's maintenance database
    redis: str


def with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


async def drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def make_settings(**sections: dict[str, Any]) -> Settings:
    return convert_settings(sections)


def artifact_keys(**overrides: Any) -> Keyring:
    """The test artifact key (id `k1`) as the current one, with `[artifacts]` overrides."""
    return Keyring.from_settings(
        make_settings(artifacts={"hmac_key": HMAC_KEY, **overrides}).artifacts
    )


def auth_settings(**overrides: Any) -> AuthSettings:
    """JWT settings that trust the in-process IdP of `tests.auth.idp`, with `overrides`."""
    values: dict[str, Any] = {
        "mode": "jwt",
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "jwks_url": JWKS_URL,
        "leeway_seconds": 0,
        "jwks_cache_seconds": 300,
        "jwks_min_refresh_seconds": 30,
        "introspection_url": INTROSPECTION_URL,
        "introspection_client_id": CLIENT_ID,
        "introspection_client_secret": CLIENT_SECRET,
    }
    values.update(overrides)
    return make_settings(auth=values).auth


AuthFactory = Callable[..., Awaitable[BearerAuthenticator]]
"""The `make_auth` fixture: builds authenticators from `auth_settings(**overrides)`."""


# -- the api in process -------------------------------------------------------------------------


class AppClient(httpx2.AsyncClient):
    """An in-process client that can also reach its app's lifespan services (for counters),
    and the app itself (for reading a response as it streams, see `tests/sse.py`)."""

    services: Services
    app: ASGIApp


ClientFactory = Callable[[Settings], Awaitable[AppClient]]
"""The `client_factory` fixture: an in-process client for given settings."""


def json_of(response: httpx2.Response) -> Any:
    return msgspec.json.decode(response.content)


async def make_model(client: httpx2.AsyncClient, name: str, model_type: str, **extra: Any) -> None:
    response = await client.post("/models", json={"name": name, "model_type": model_type, **extra})
    assert response.status_code == 201, response.text


async def make_dataset(
    client: httpx2.AsyncClient, name: str, records: list[dict[str, Any]], **fields: Any
) -> dict[str, Any]:
    """A dataset from JSON records; returns its description."""
    response = await client.post("/datasets", json={"name": name, "data": records, **fields})
    assert response.status_code == 201, response.text
    dataset: dict[str, Any] = json_of(response)
    return dataset


async def submit(
    client: httpx2.AsyncClient, name: str, kind: str, body: dict[str, Any], **headers: str
) -> dict[str, Any]:
    """Posts a job (`train`, `update`, `batch-predictions`) for model `name`; returns the job."""
    response = await client.post(f"/models/{name}/{kind}", json=body, headers=headers)
    assert response.status_code == 202, response.text
    job: dict[str, Any] = json_of(response)
    assert response.headers["location"] == f"/jobs/{job['id']}"
    return job


async def job_of(client: httpx2.AsyncClient, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = json_of(await client.get(f"/jobs/{job_id}"))
    return job


async def run_job(
    client: httpx2.AsyncClient, run_worker: Worker, name: str, kind: str, body: dict[str, Any]
) -> dict[str, Any]:
    """Submits a job, runs the worker until the queue is empty, and checks the job succeeded."""
    job = await submit(client, name, kind, body)
    await run_worker()
    done = await job_of(client, job["id"])
    assert done["status"] == "succeeded", done
    return done


# -- tenants ------------------------------------------------------------------------------------

TenantHeaders = Callable[..., dict[str, str]]
"""`headers(tenant, sub="alice", scopes=("admin",))`: an Authorization header of that tenant."""


async def tenant_app(
    client_factory: ClientFactory, settings: Settings, tmp_path: Path, **auth_overrides: Any
) -> tuple[AppClient, TenantHeaders]:
    """The app in jwt mode trusting the development key (with `[auth]` overrides), and a maker
    of tenants' tokens (`tenant=None`: a token without the claim)."""
    key_file = tmp_path / "dev-jwk.json"
    auth = auth_settings(
        issuer=DEV_ISSUER,
        audience=DEV_AUDIENCE,
        jwks_url="",
        jwks_file=str(write_dev_jwks(key_file)),
        dev_key_file=str(key_file),
        **auth_overrides,
    )
    client = await client_factory(msgspec.structs.replace(settings, auth=auth))

    def headers(
        tenant: str | None, sub: str = "alice", scopes: tuple[str, ...] = ("admin",)
    ) -> dict[str, str]:
        return {"Authorization": f"Bearer {mint_token(auth, sub, scopes, 600, tenant=tenant)}"}

    return client, headers
