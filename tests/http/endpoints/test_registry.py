"""The registry's routes: aliases, the traffic split, and optimistic concurrency (`ETag` and
`If-Match`) on models, aliases and traffic; every refusal leaves the stored state as it was."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import httpx2
import msgspec
import pytest

from service.domain.aliases import MAX_ALIASES
from service.settings import Settings
from tests.factories import ClientFactory, Worker, json_of, make_model, run_job
from tests.tcpproxy import TcpProxy

pytestmark = pytest.mark.anyio


async def three_versions(client: httpx2.AsyncClient, run_worker: Worker, name: str = "lin") -> None:
    await make_model(client, name, "sklearn.linear_model.LinearRegression", target="y")
    for slope in (1.0, 2.0, 3.0):
        data = [{"x": float(x), "y": slope * x} for x in range(10)]
        await run_job(client, run_worker, name, "train", {"data": data})


def errors_at(response: httpx2.Response) -> list[str]:
    return [e["loc"] for e in json_of(response)["errors"]]


async def test_an_alias_is_created_read_moved_listed_and_deleted(
    client: httpx2.AsyncClient, run_worker: Worker
) -> None:
    await three_versions(client, run_worker)
    created = await client.put("/models/lin/aliases/production", json={"version": 1})
    assert created.status_code == 200, created.text
    alias = json_of(created)
    assert {k: alias[k] for k in ("alias", "version", "updated_by")} == {
        "alias": "production", "version": 1, "updated_by": "anonymous"
    }  # fmt: skip
    assert created.headers["etag"] == alias["etag"]
    got = await client.get("/models/lin/aliases/production")
    assert json_of(got) == alias and got.headers["etag"] == alias["etag"]
    moved = json_of(await client.put("/models/lin/aliases/production", json={"version": 2}))
    assert moved["version"] == 2 and moved["etag"] != alias["etag"]
    await client.put("/models/lin/aliases/canary", json={"version": 3})
    listed = json_of(await client.get("/models/lin/aliases"))
    assert [(a["alias"], a["version"]) for a in listed["items"]] == [
        ("canary", 3), ("production", 2)
    ]  # fmt: skip
    body = {"data": [{"x": 1.0}]}
    by_alias = json_of(await client.post("/models/lin/predict", json={**body, "alias": "canary"}))
    assert (by_alias["version"], by_alias["predictions"]) == (3, [pytest.approx(3.0)])
    assert (await client.delete("/models/lin/aliases/canary")).status_code == 204
    assert (await client.get("/models/lin/aliases/canary")).status_code == 404
    assert (await client.delete("/models/lin/aliases/canary")).status_code == 404
    gone = await client.post("/models/lin/predict", json={**body, "alias": "canary"})
    assert gone.status_code == 404 and "canary" in json_of(gone)["detail"]


async def test_bad_aliases_are_refused_by_name_and_store_nothing(
    client: httpx2.AsyncClient, run_worker: Worker
) -> None:
    await three_versions(client, run_worker)
    await client.put("/models/lin/aliases/production", json={"version": 1})
    for alias in ("Production", "9lives", "a" * 64, "prod%20x"):
        response = await client.put(f"/models/lin/aliases/{alias}", json={"version": 1})
        assert response.status_code == 422, response.text
        assert errors_at(response) == ["alias"]
    missing = await client.put("/models/lin/aliases/production", json={"version": 9})
    assert missing.status_code == 422 and errors_at(missing) == ["$.version"]
    for body in ({}, {"version": 0}, {"version": "2"}, {"version": 1, "note": "x"}):
        assert (await client.put("/models/lin/aliases/x", json=body)).status_code == 422
    assert (await client.put("/models/nope/aliases/x", json={"version": 1})).status_code == 404
    listed = json_of(await client.get("/models/lin/aliases"))["items"]
    assert [(a["alias"], a["version"]) for a in listed] == [("production", 1)]
    both = {"data": [{"x": 1.0}], "version": 1, "alias": "production"}
    refused = await client.post("/models/lin/predict", json=both)
    assert refused.status_code == 422 and errors_at(refused) == ["$.alias"]
    bad_name = await client.post("/models/lin/predict", json={"data": [], "alias": "Nope"})
    assert bad_name.status_code == 422 and errors_at(bad_name) == ["$.alias"]


async def test_the_traffic_split_is_checked_whole_and_a_refusal_keeps_the_last_one(
    client: httpx2.AsyncClient, run_worker: Worker
) -> None:
    await three_versions(client, run_worker)
    default = await client.get("/models/lin/traffic")
    assert default.status_code == 200 and "etag" not in default.headers
    assert json_of(default) | {"figures": []} == {
        "split": [{"version": 3, "weight": 100}], "shadow": [], "default": True,
        "updated_at": None, "updated_by": None, "etag": None, "figures": [],
    }  # fmt: skip
    good = {"split": [{"version": 1, "weight": 90}, {"version": 2, "weight": 10}], "shadow": [3]}
    stored = await client.put("/models/lin/traffic", json=good)
    assert stored.status_code == 200, stored.text
    shown = json_of(stored)
    assert (shown["split"], shown["shadow"], shown["default"]) == (good["split"], [3], False)
    assert stored.headers["etag"] == shown["etag"]
    bad: list[tuple[dict[str, Any], list[str]]] = [
        ({"split": [{"version": 1, "weight": 50}]}, ["$.split"]),
        ({"split": [{"version": 1, "weight": 50}, {"version": 1, "weight": 50}]},
         ["$.split[1].version"]),
        ({"split": [{"version": 1, "weight": 100}], "shadow": [1]}, ["$.shadow[0]"]),
        ({"split": [{"version": 1, "weight": 100}], "shadow": [2, 2]}, ["$.shadow[1]"]),
        ({"split": [{"version": 7, "weight": 100}], "shadow": [8]},
         ["$.split[0].version", "$.shadow[0]"]),
    ]  # fmt: skip
    for body, locs in bad:
        response = await client.put("/models/lin/traffic", json=body)
        assert response.status_code == 422, (body, response.text)
        assert errors_at(response) == locs, body
    for body in ({"split": []}, {"split": [{"version": 1, "weight": 0}]}, {"shadow": [1]}):
        assert (await client.put("/models/lin/traffic", json=body)).status_code == 422
    assert json_of(await client.get("/models/lin/traffic"))["split"] == good["split"]
    assert (await client.delete("/models/lin/traffic")).status_code == 204
    assert json_of(await client.get("/models/lin/traffic"))["default"] is True
    assert (await client.delete("/models/lin/traffic")).status_code == 204  # already default


async def test_concurrent_activations_holding_one_etag_give_one_success_and_412s(
    client: httpx2.AsyncClient, run_worker: Worker
) -> None:
    await three_versions(client, run_worker)
    read = await client.get("/models/lin")
    tag = read.headers["etag"]
    activations = [
        client.post(f"/models/lin/versions/{v}/activate", headers={"If-Match": tag})
        for v in (1, 2, 3, 1, 2, 3)
    ]
    answers = await asyncio.gather(*activations)
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200, 412, 412, 412, 412, 412], [r.text for r in answers]
    winner = next(r for r in answers if r.status_code == 200)
    loser = next(r for r in answers if r.status_code == 412)
    assert json_of(loser)["type"] == "/problems/precondition-failed"
    now = await client.get("/models/lin")
    assert now.headers["etag"] == winner.headers["etag"] != tag
    assert json_of(now)["current_version"] == json_of(winner)["current_version"]
    # Activating the version already current is still a change a stale tag cannot repeat.
    again = await client.post("/models/lin/versions/3/activate", headers={"If-Match": tag})
    assert again.status_code == 412


async def test_if_match_guards_patch_delete_aliases_and_traffic(
    client: httpx2.AsyncClient, run_worker: Worker
) -> None:
    await three_versions(client, run_worker)
    tag = (await client.get("/models/lin")).headers["etag"]
    patched = await client.patch("/models/lin", json={"title": "t"}, headers={"If-Match": tag})
    assert patched.status_code == 200 and patched.headers["etag"] != tag
    stale = await client.patch("/models/lin", json={"title": "u"}, headers={"If-Match": tag})
    assert stale.status_code == 412
    assert json_of(await client.get("/models/lin"))["title"] == "t"
    star = await client.patch("/models/lin", json={"description": "d"}, headers={"If-Match": "*"})
    assert star.status_code == 200
    listed = f'"nope", {star.headers["etag"]}'
    one_of = await client.patch(
        "/models/lin", json={"description": "e"}, headers={"If-Match": listed}
    )
    assert one_of.status_code == 200
    stale_tag = patched.headers["etag"]
    weak = await client.patch("/models/lin", json={"title": "w"}, headers={"If-Match": "W/" + tag})
    assert weak.status_code == 412  # weak tags never match a change
    malformed = await client.patch("/models/lin", json={"title": "m"}, headers={"If-Match": "r1"})
    assert malformed.status_code == 400 and errors_at(malformed) == ["If-Match"]

    # Aliases: `*` needs one to exist; a tag must be the alias's current one.
    path = "/models/lin/aliases/production"
    absent = await client.put(path, json={"version": 1}, headers={"If-Match": "*"})
    assert absent.status_code == 412
    first = await client.put(path, json={"version": 1})
    alias_tag = first.headers["etag"]
    racing = [
        client.put(path, json={"version": v}, headers={"If-Match": alias_tag}) for v in (2, 3)
    ]
    statuses = sorted(r.status_code for r in await asyncio.gather(*racing))
    assert statuses == [200, 412]
    refused = await client.delete(path, headers={"If-Match": alias_tag})
    assert refused.status_code == 412
    assert (await client.get(path)).status_code == 200

    # Traffic: the same rules on the split's own tag.
    split = {"split": [{"version": 1, "weight": 100}]}
    assert (
        await client.put("/models/lin/traffic", json=split, headers={"If-Match": "*"})
    ).status_code == 412
    traffic_tag = (await client.put("/models/lin/traffic", json=split)).headers["etag"]
    moved = await client.put(
        "/models/lin/traffic",
        json={"split": [{"version": 2, "weight": 100}]},
        headers={"If-Match": traffic_tag},
    )
    assert moved.status_code == 200
    stale_delete = await client.delete("/models/lin/traffic", headers={"If-Match": traffic_tag})
    assert stale_delete.status_code == 412
    assert json_of(await client.get("/models/lin/traffic"))["split"][0]["version"] == 2

    model_tag = (await client.get("/models/lin")).headers["etag"]
    assert model_tag == one_of.headers["etag"]  # aliases and traffic have tags of their own
    assert (await client.delete("/models/lin", headers={"If-Match": stale_tag})).status_code == 412
    assert (await client.delete("/models/lin", headers={"If-Match": model_tag})).status_code == 204


async def test_a_model_delete_takes_its_aliases_and_split_and_a_new_model_starts_clean(
    client: httpx2.AsyncClient, run_worker: Worker
) -> None:
    await three_versions(client, run_worker)
    old_tag = (await client.get("/models/lin")).headers["etag"]
    await client.put("/models/lin/aliases/production", json={"version": 2})
    await client.put("/models/lin/traffic", json={"split": [{"version": 1, "weight": 100}]})
    assert (await client.delete("/models/lin")).status_code == 204
    await make_model(client, "lin", "sklearn.linear_model.LinearRegression", target="y")
    assert json_of(await client.get("/models/lin/aliases")) == {"items": []}
    assert json_of(await client.get("/models/lin/traffic"))["default"] is True
    new_tag = (await client.get("/models/lin")).headers["etag"]
    assert new_tag != old_tag
    stale = await client.patch("/models/lin", json={"title": "x"}, headers={"If-Match": old_tag})
    assert stale.status_code == 412


async def test_what_a_caller_can_make_the_registry_hold_is_bounded(
    client: httpx2.AsyncClient, run_worker: Worker
) -> None:
    """At most 100 aliases per model, 10 split shares and 3 shadows; names no alias can have
    are a 404 to read or delete and a 422 to create, never a query."""
    await three_versions(client, run_worker)
    for i in range(MAX_ALIASES):
        made = await client.put(f"/models/lin/aliases/a{i}", json={"version": 1})
        assert made.status_code == 200, made.text
    over = await client.put("/models/lin/aliases/one-more", json={"version": 1})
    assert over.status_code == 409 and "100 aliases" in json_of(over)["detail"]
    assert (await client.put("/models/lin/aliases/a0", json={"version": 2})).status_code == 200
    assert len(json_of(await client.get("/models/lin/aliases"))["items"]) == MAX_ALIASES
    for bad in ("%00", "x" * 300, "A%20b"):
        assert (await client.get(f"/models/lin/aliases/{bad}")).status_code == 404
        assert (await client.delete(f"/models/lin/aliases/{bad}")).status_code == 404
        assert (
            await client.put(f"/models/lin/aliases/{bad}", json={"version": 1})
        ).status_code == 422
    shares = [{"version": 1, "weight": 10}] * 11
    for body in (
        {"split": shares},
        {"split": [{"version": 1, "weight": 100}], "shadow": [2, 3, 2, 3]},
    ):
        assert (await client.put("/models/lin/traffic", json=body)).status_code == 422


async def test_a_split_stored_while_redis_is_down_is_answered_200_and_its_figures_503(
    client_factory: ClientFactory, settings: Settings, run_worker: Worker
) -> None:
    target = urlsplit(settings.redis.url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 6379)
    await proxy.start()
    redis = msgspec.structs.replace(
        settings.redis, url=f"redis://127.0.0.1:{proxy.port}{target.path}"
    )
    client = await client_factory(msgspec.structs.replace(settings, redis=redis))
    try:
        await three_versions(client, run_worker)
        await proxy.stop()
        stored = await client.put(
            "/models/lin/traffic", json={"split": [{"version": 2, "weight": 100}]}
        )
        assert stored.status_code == 200, stored.text
        assert json_of(stored)["figures"] == []
        assert (await client.get("/models/lin/traffic")).status_code == 503
        answer = await client.post("/models/lin/predict", json={"data": [{"x": 1.0}]})
        assert answer.status_code == 200 and json_of(answer)["version"] == 2
    finally:
        await proxy.stop()
