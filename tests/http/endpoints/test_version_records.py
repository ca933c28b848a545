"""A version shows the settings its fit really used and what the fit warned."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
import httpx2
import pytest

from tests.factories import json_of, make_model, submit
from tests.iris import iris_records

pytestmark = pytest.mark.anyio

Worker = Callable[[], Awaitable[None]]
LOGREG = "sklearn.linear_model.LogisticRegression"


async def test_a_fit_that_does_not_converge_leaves_a_warning_on_its_version(
    client: httpx2.AsyncClient, run_worker: Worker
) -> None:
    await make_model(client, "rushed", LOGREG, target="species", settings={"max_iter": 1})
    await make_model(client, "patient", LOGREG, target="species", settings={"max_iter": 1000})
    for name in ("rushed", "patient"):
        await submit(client, name, "train", {"data": iris_records()})
    await run_worker()
    rushed = json_of(await client.get("/models/rushed/versions/1"))
    assert [w for w in rushed["warnings"] if w.startswith("ConvergenceWarning: ")]
    assert json_of(await client.get("/models/patient/versions/1"))["warnings"] == []
    listed = json_of(await client.get("/models/rushed/versions"))["items"][0]
    assert listed["warnings"] == rushed["warnings"]


async def test_a_version_shows_the_settings_its_fit_used(
    client: httpx2.AsyncClient, run_worker: Worker
) -> None:
    await make_model(
        client,
        "sgd",
        "sklearn.linear_model.SGDClassifier",
        target="species",
        settings={"alpha": 0.001},
    )
    await submit(client, "sgd", "train", {"data": iris_records()[::2]})
    await run_worker()
    await submit(client, "sgd", "update", {"data": iris_records()[1::2]})
    await run_worker()
    for number in (1, 2):  # a train, then an update by partial_fit
        settings = json_of(await client.get(f"/models/sgd/versions/{number}"))["settings"]
        assert settings["alpha"] == 0.001  # the model's
        assert settings["random_state"] == 0  # seeded by the service
        assert settings["loss"] == "hinge" and settings["max_iter"] == 1000  # defaults


async def test_versions_stored_before_the_records_show_none(
    client: httpx2.AsyncClient, run_worker: Worker, database_url: str
) -> None:
    await make_model(client, "old", LOGREG, target="species", settings={"max_iter": 1})
    await submit(client, "old", "train", {"data": iris_records()})
    await run_worker()
    conn = await asyncpg.connect(database_url)
    try:  # what migration 0007 leaves on a version stored before it
        await conn.execute("UPDATE model_versions SET settings = DEFAULT, warnings = DEFAULT")
    finally:
        await conn.close()
    version = json_of(await client.get("/models/old/versions/1"))
    assert version["settings"] is None and version["warnings"] == []
