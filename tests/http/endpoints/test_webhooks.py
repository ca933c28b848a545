"""Registering webhooks over the real app: the signing secret is shown once and stored sealed;
URLs that reach no public address are refused at `$.url` and store nothing (unless
`webhooks.allow_private`); event types are checked; a tenant's webhooks are capped, also
against concurrent registrations; delete takes the owed deliveries along; the deliveries list
shows attempts newest first; every registration and delete is audited without the secret."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx2
import msgspec
import pytest

from service.settings import Settings
from service.webhooks.secrets import SecretBox
from tests.factories import ClientFactory, json_of, tenant_app

pytestmark = pytest.mark.anyio

RECEIVER = "http://127.0.0.1:9/hooks"
HOOK = {"url": RECEIVER, "events": ["job.succeeded", "dataset.created"], "description": "ci"}


def with_webhooks(settings: Settings, **overrides: Any) -> Settings:
    return msgspec.structs.replace(
        settings, webhooks=msgspec.structs.replace(settings.webhooks, **overrides)
    )


@pytest.fixture
async def open_client(client_factory: ClientFactory, settings: Settings) -> httpx2.AsyncClient:
    """The app with `webhooks.allow_private = true`: receivers on this machine are admitted."""
    return await client_factory(with_webhooks(settings, allow_private=True))


async def register(client: httpx2.AsyncClient, **changes: Any) -> dict[str, Any]:
    response = await client.post("/webhooks", json={**HOOK, **changes})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = json_of(response)
    return body


async def test_a_new_webhook_shows_its_secret_once_and_the_row_holds_it_sealed(
    open_client: httpx2.AsyncClient, settings: Settings, raw: asyncpg.Connection
) -> None:
    response = await open_client.post("/webhooks", json=HOOK)
    assert response.status_code == 201, response.text
    created = json_of(response)
    assert response.headers["location"] == f"/webhooks/{created['id']}"
    secret = created.pop("secret")
    assert secret.startswith("whsec_") and len(secret) > 30
    assert created.pop("created_at")
    assert created == {
        "id": created["id"],
        "url": RECEIVER,
        "events": ["job.succeeded", "dataset.created"],
        "description": "ci",
        "created_by": "anonymous",
        "tenant": "default",
    }
    one = await open_client.get(f"/webhooks/{created['id']}")
    listed = json_of(await open_client.get("/webhooks"))
    assert one.status_code == 200 and "secret" not in json_of(one)
    assert [{k: v for k, v in item.items() if k != "created_at"} for item in listed["items"]] == [
        created
    ]
    assert "secret" not in listed["items"][0] and secret not in one.text + str(listed)
    row = await raw.fetchrow(
        "SELECT tenant, secret, secret_key_id FROM webhooks WHERE id = $1",
        uuid.UUID(created["id"]),
    )
    assert row is not None
    stored = bytes(row["secret"])
    assert secret.encode() not in stored and secret.removeprefix("whsec_").encode() not in stored
    box = SecretBox.from_settings(settings)
    assert box.open(row["tenant"], uuid.UUID(created["id"]), stored, row["secret_key_id"]) == secret
    again = await register(open_client)
    assert again["secret"] != secret  # each webhook its own


REFUSED = {
    "http://127.0.0.1/": "not a public address",
    "http://[::1]/": "not a public address",
    "http://10.0.0.1/": "not a public address",
    "http://169.254.169.254/latest/meta-data": "not a public address",
    "http://[fe80::1]/": "not a public address",
    "http://[::ffff:127.0.0.1]/": "not a public address",
    "http://localhost/": "not a public address",  # a name that resolves to loopback
    "ftp://files.example.com/hooks": "http or https",
    "https://user:pass@127.0.0.1/": "credentials",
    "https://hooks.invalid/": "does not resolve",
    "/relative/hooks": "http or https",
    "http://a..b/": "not a valid host name",
    f"http://{'a' * 64}.example.com/": "not a valid host name",
}


async def test_urls_that_reach_no_public_address_are_refused_at_the_url_and_nothing_is_stored(
    client: httpx2.AsyncClient, raw: asyncpg.Connection
) -> None:
    for url, why in REFUSED.items():
        response = await client.post("/webhooks", json={**HOOK, "url": url})
        assert response.status_code == 422, (url, response.text)
        problem = json_of(response)
        assert [e["loc"] for e in problem["errors"]] == ["$.url"], url
        assert why in problem["errors"][0]["msg"], (url, problem)
    assert await raw.fetchval("SELECT count(*) FROM webhooks") == 0
    assert await raw.fetchval("SELECT count(*) FROM audit_log WHERE action LIKE 'webhook.%'") == 0


async def test_allow_private_admits_a_receiver_on_loopback(
    open_client: httpx2.AsyncClient,
) -> None:
    for url in ("http://127.0.0.1:8080/hooks", "http://localhost/hooks", "http://[::1]/"):
        assert (await register(open_client, url=url))["url"] == url
    # The form is checked all the same.
    response = await open_client.post("/webhooks", json={**HOOK, "url": "ftp://127.0.0.1/"})
    assert response.status_code == 422 and json_of(response)["errors"][0]["loc"] == "$.url"


async def test_an_unknown_event_type_or_none_at_all_is_a_422_naming_the_field(
    open_client: httpx2.AsyncClient, raw: asyncpg.Connection
) -> None:
    cases = {
        ("job.succeeded", "model.exploded"): "$.events[1]",
        (): "$.events",
        ("job.*",): "$.events[0]",
    }
    for events, loc in cases.items():
        response = await open_client.post("/webhooks", json={**HOOK, "events": list(events)})
        assert response.status_code == 422, response.text
        assert [e["loc"] for e in json_of(response)["errors"]] == [loc], events
    for body in ({"events": ["job.failed"]}, {"url": RECEIVER}, {**HOOK, "secret": "mine"}):
        assert (await open_client.post("/webhooks", json=body)).status_code == 422, body
    assert await raw.fetchval("SELECT count(*) FROM webhooks") == 0
    # A type given twice is subscribed once.
    twice = await register(open_client, events=["job.failed", "alias.moved", "job.failed"])
    assert twice["events"] == ["job.failed", "alias.moved"]


async def test_a_tenant_holds_at_most_the_configured_webhooks_even_when_registering_at_once(
    client_factory: ClientFactory, settings: Settings, raw: asyncpg.Connection
) -> None:
    client = await client_factory(
        with_webhooks(settings, allow_private=True, max_webhooks_per_tenant=3)
    )
    answers = await asyncio.gather(*(client.post("/webhooks", json=HOOK) for _ in range(8)))
    assert sorted(a.status_code for a in answers) == [201] * 3 + [409] * 5
    refused = json_of(next(a for a in answers if a.status_code == 409))
    assert refused["type"] == "/problems/conflict" and "3 webhooks" in refused["detail"]
    assert await raw.fetchval("SELECT count(*) FROM webhooks") == 3
    # Deleting one makes room for one.
    first = json_of(next(a for a in answers if a.status_code == 201))
    assert (await client.delete(f"/webhooks/{first['id']}")).status_code == 204
    await register(client)
    assert (await client.post("/webhooks", json=HOOK)).status_code == 409


async def test_the_cap_counts_each_tenants_webhooks_apart(
    client_factory: ClientFactory, settings: Settings, tmp_path: Path
) -> None:
    capped = with_webhooks(settings, allow_private=True, max_webhooks_per_tenant=1)
    client, headers = await tenant_app(client_factory, capped, tmp_path)
    for tenant in ("acme", "globex"):
        first = await client.post("/webhooks", json=HOOK, headers=headers(tenant))
        assert first.status_code == 201, first.text
        assert json_of(first)["tenant"] == tenant
    again = await client.post("/webhooks", json=HOOK, headers=headers("acme"))
    assert again.status_code == 409, again.text


async def test_the_list_pages_by_limit_and_offset_oldest_first(
    open_client: httpx2.AsyncClient,
) -> None:
    ids = [(await register(open_client, description=f"hook {i}"))["id"] for i in range(3)]
    first = json_of(await open_client.get("/webhooks", params={"limit": 2}))
    rest = json_of(await open_client.get("/webhooks", params={"limit": 2, "offset": 2}))
    assert (first["total"], first["limit"], first["offset"]) == (3, 2, 0)
    assert [w["id"] for w in first["items"] + rest["items"]] == ids
    assert (await open_client.get("/webhooks", params={"where": "url = x"})).status_code == 400
    assert (await open_client.get("/webhooks", params={"limit": "-1"})).status_code == 400


async def test_an_unknown_or_malformed_webhook_id_is_a_404(
    open_client: httpx2.AsyncClient,
) -> None:
    for ident in (str(uuid.uuid4()), "not-a-uuid", "12345"):
        for method, path in (
            ("GET", f"/webhooks/{ident}"),
            ("DELETE", f"/webhooks/{ident}"),
            ("GET", f"/webhooks/{ident}/deliveries"),
        ):
            response = await open_client.request(method, path)
            assert response.status_code == 404, (method, path, response.text)
            assert f"webhook '{ident}' does not exist" == json_of(response)["detail"]


async def test_deleting_a_webhook_takes_the_deliveries_it_is_owed_along(
    open_client: httpx2.AsyncClient, raw: asyncpg.Connection
) -> None:
    hook = await register(open_client)
    kept = await register(open_client)
    made = await open_client.post("/datasets", json={"name": "iris", "data": [{"x": 1}]})
    assert made.status_code == 201, made.text
    owed = "SELECT count(*) FROM webhook_deliveries WHERE webhook_id = $1"
    assert await raw.fetchval(owed, uuid.UUID(hook["id"])) == 1
    assert (await open_client.delete(f"/webhooks/{hook['id']}")).status_code == 204
    assert (await open_client.get(f"/webhooks/{hook['id']}")).status_code == 404
    assert await raw.fetchval(owed, uuid.UUID(hook["id"])) == 0
    assert await raw.fetchval(owed, uuid.UUID(kept["id"])) == 1
    assert [w["id"] for w in json_of(await open_client.get("/webhooks"))["items"]] == [kept["id"]]
    assert (await open_client.delete(f"/webhooks/{hook['id']}")).status_code == 404


async def test_the_deliveries_list_shows_each_attempt_newest_first_with_its_delivery_status(
    open_client: httpx2.AsyncClient, raw: asyncpg.Connection
) -> None:
    hook = await register(open_client)
    webhook_id = uuid.UUID(hook["id"])
    other = await register(open_client, events=["dataset.created"])
    for name in ("a", "b"):
        made = await open_client.post("/datasets", json={"name": name, "data": [{"x": 1}]})
        assert made.status_code == 201, made.text
    empty = json_of(await open_client.get(f"/webhooks/{hook['id']}/deliveries"))
    assert empty == {"items": [], "total": 0, "limit": 100, "offset": 0}  # none attempted yet
    deliveries = await raw.fetch(
        "SELECT d.id, e.event_id FROM webhook_deliveries d JOIN events e ON e.id = d.event"
        " WHERE d.webhook_id = $1 ORDER BY e.id",
        webhook_id,
    )
    (a, a_event), (b, b_event) = [(d["id"], d["event_id"]) for d in deliveries]
    # As the delivering worker records them: `a` failed once, then arrived; `b` timed out.
    attempts = [
        (a, 1, "2026-12-01T10:00:00Z", 503, None, 12.5, "2026-12-01T10:00:05Z"),
        (a, 2, "2026-12-01T10:00:06Z", 204, None, 3.0, None),
        (b, 1, "2026-12-01T10:00:07Z", None, "timed out", 10000.0, "2026-12-01T10:00:17Z"),
    ]
    for delivery, attempt, at, code, error, ms, retry in attempts:
        await raw.execute(
            "INSERT INTO webhook_attempts (tenant, delivery_id, webhook_id, attempt, at,"
            " status_code, error, duration_ms, next_attempt_at)"
            " VALUES ('default', $1, $2, $3, $4::text::timestamptz, $5, $6, $7,"
            " $8::text::timestamptz)",
            delivery,
            webhook_id,
            attempt,
            at,
            code,
            error,
            ms,
            retry,
        )
    await raw.execute("UPDATE webhook_deliveries SET status = 'delivered' WHERE id = $1", a)
    page = json_of(await open_client.get(f"/webhooks/{hook['id']}/deliveries"))
    assert page["total"] == 3
    assert page["items"] == [
        {
            "event_id": str(b_event),
            "type": "dataset.created",
            "attempt": 1,
            "at": "2026-12-01T10:00:07Z",
            "status_code": None,
            "error": "timed out",
            "duration_ms": 10000.0,
            "next_attempt_at": "2026-12-01T10:00:17Z",
            "status": "pending",
        },
        {
            "event_id": str(a_event),
            "type": "dataset.created",
            "attempt": 2,
            "at": "2026-12-01T10:00:06Z",
            "status_code": 204,
            "error": None,
            "duration_ms": 3.0,
            "next_attempt_at": None,
            "status": "delivered",
        },
        {
            "event_id": str(a_event),
            "type": "dataset.created",
            "attempt": 1,
            "at": "2026-12-01T10:00:00Z",
            "status_code": 503,
            "error": None,
            "duration_ms": 12.5,
            "next_attempt_at": "2026-12-01T10:00:05Z",
            "status": "delivered",
        },
    ]
    second = json_of(
        await open_client.get(
            f"/webhooks/{hook['id']}/deliveries", params={"limit": 1, "offset": 1}
        )
    )
    assert (second["items"], second["total"]) == (page["items"][1:2], 3)
    theirs = json_of(await open_client.get(f"/webhooks/{other['id']}/deliveries"))
    assert theirs["total"] == 0  # another webhook's attempts are its own


async def test_registrations_and_deletes_are_audited_without_the_secret(
    open_client: httpx2.AsyncClient,
) -> None:
    hook = await register(open_client, events=["alias.moved"], description="deploys")
    assert (await open_client.delete(f"/webhooks/{hook['id']}")).status_code == 204
    response = await open_client.get(
        "/audit", params={"where": "resource STARTSWITH webhooks/", "order_by": "id"}
    )
    assert response.status_code == 200, response.text
    entries = json_of(response)["items"]
    summary = {"url": RECEIVER, "events": ["alias.moved"], "description": "deploys"}
    assert [(e["action"], e["resource"], e["actor"], e["before"], e["after"]) for e in entries] == [
        ("webhook.created", f"webhooks/{hook['id']}", "anonymous", None, summary),
        ("webhook.deleted", f"webhooks/{hook['id']}", "anonymous", summary, None),
    ]
    assert hook["secret"] not in response.text and "whsec_" not in response.text
