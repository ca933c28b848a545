"""Training from a dataset query that groups, aggregates or skips rows (`offset`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx2
import pytest

from tests.factories import json_of, make_model, submit
from tests.iris import IRIS_FEATURES, iris_records

pytestmark = pytest.mark.anyio

Worker = Callable[[], Awaitable[None]]
LOGREG = "sklearn.linear_model.LogisticRegression"
MEANS = [f"{name}_avg" for name in IRIS_FEATURES]


def measurements() -> list[dict[str, Any]]:
    """Iris as repeated measurements of 30 plants, five rows each, one species per plant."""
    return [{**r, "plant": f"{r['species']}-{i % 10}"} for i, r in enumerate(iris_records())]


def plant_means(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per plant: the mean of each feature, computed exactly, in the grouped query's order."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["plant"], row["species"]), []).append(row)
    return [
        {
            **{
                f"{name}_avg": float(sum(Decimal(repr(r[name])) for r in members) / len(members))
                for name in IRIS_FEATURES
            },
            "species": species,
        }
        for (_, species), members in sorted(groups.items())
    ]


async def test_a_grouped_aggregated_query_trains_on_one_row_per_group(
    client: httpx2.AsyncClient, run_worker: Worker
) -> None:
    rows = measurements()
    response = await client.post("/datasets", json={"name": "plants", "data": rows})
    assert response.status_code == 201, response.text
    for name in ("grouped", "inline"):
        await make_model(client, name, LOGREG, target="species", settings={"max_iter": 500})
    query = {
        "name": "plants",
        "group_by": ["plant", "species"],
        "aggregate": IRIS_FEATURES,
        "aggregate_func": ["avg", "AVG", "avg", "avg"],  # as the rows page: any case
    }
    job = await submit(client, "grouped", "train", {"dataset": query, "features": MEANS})
    await submit(client, "inline", "train", {"data": plant_means(rows)})
    await run_worker()
    assert json_of(await client.get(f"/jobs/{job['id']}"))["status"] == "succeeded"

    version = json_of(await client.get("/models/grouped/versions/1"))
    reference = json_of(await client.get("/models/inline/versions/1"))
    assert version["rows"] == reference["rows"] == 30
    assert version["features"] == MEANS and version["target"] == "species"
    assert version["source"]["query"]["group_by"] == ["plant", "species"]
    assert version["metrics"] == pytest.approx(reference["metrics"])
    probe = {"data": [{m: r[m] for m in MEANS} for r in plant_means(rows)]}
    grouped = json_of(await client.post("/models/grouped/predict", json=probe))
    inline = json_of(await client.post("/models/inline/predict", json=probe))
    assert grouped["predictions"] == inline["predictions"]


async def test_features_default_to_what_the_grouped_query_gives(
    client: httpx2.AsyncClient, run_worker: Worker
) -> None:
    await client.post("/datasets", json={"name": "plants", "data": measurements()})
    await make_model(client, "plants", LOGREG, target="species", settings={"max_iter": 500})
    query = {
        "name": "plants",
        "group_by": ["plant", "species"],
        "select": ["species"],
        "aggregate": ["petal_length", "petal_width"],
        "aggregate_func": ["max", "min"],
    }
    job = await submit(client, "plants", "train", {"dataset": query})
    await run_worker()
    assert json_of(await client.get(f"/jobs/{job['id']}"))["status"] == "succeeded"
    version = json_of(await client.get("/models/plants/versions/1"))
    assert version["features"] == ["petal_length_max", "petal_width_min"]
    assert version["rows"] == 30


async def test_offset_skips_the_first_rows_of_the_order(
    client: httpx2.AsyncClient, run_worker: Worker
) -> None:
    # The five smallest x are outliers; skipping them leaves the line y = 2x exactly.
    rows = [{"x": float(x), "y": -100.0 if x < 5 else 2.0 * x} for x in range(12)]
    await client.post("/datasets", json={"name": "line", "data": rows})
    await make_model(client, "lin", "sklearn.linear_model.LinearRegression", target="y")
    query = {"name": "line", "order_by": ["x"], "offset": 5, "limit": 4}
    job = await submit(client, "lin", "train", {"dataset": query})
    await run_worker()
    assert json_of(await client.get(f"/jobs/{job['id']}"))["status"] == "succeeded"
    version = json_of(await client.get("/models/lin/versions/1"))
    assert version["rows"] == 4 and version["source"]["query"]["offset"] == 5
    predicted = json_of(await client.post("/models/lin/predict", json={"data": [{"x": 50.0}]}))
    assert predicted["predictions"][0] == pytest.approx(100.0)


async def test_a_bad_grouping_is_a_422_naming_the_field(client: httpx2.AsyncClient) -> None:
    await client.post("/datasets", json={"name": "plants", "data": measurements()})
    await make_model(client, "plants", LOGREG, target="species")
    grouped = {"name": "plants", "group_by": ["species"]}
    cases: list[tuple[dict[str, Any], str]] = [
        (
            {**grouped, "aggregate": ["petal_width"], "aggregate_func": ["median"]},
            "aggregate_func[0]",
        ),
        ({**grouped, "aggregate": ["nope"], "aggregate_func": ["avg"]}, "aggregate[0]"),
        ({**grouped, "aggregate": ["plant"], "aggregate_func": ["sum"]}, "aggregate[0]"),
        ({**grouped, "aggregate": ["petal_width"], "aggregate_func": []}, "aggregate_func"),
        ({**grouped, "group_by": ["nope"]}, "group_by[0]"),
        ({**grouped, "group_by": ["__row"]}, "group_by[0]"),
        ({**grouped, "select": ["plant"]}, "select[0]"),
        ({**grouped, "order_by": ["petal_width"]}, "order_by[0]"),
        ({"name": "plants", "offset": -1}, "offset"),
    ]
    for query, field in cases:
        response = await client.post("/models/plants/train", json={"dataset": query})
        assert response.status_code == 422, (query, response.text)
        assert json_of(response)["errors"][0]["loc"] == f"$.dataset.{field}", (query, response.text)
    # Columns the grouped query does not give cannot be features.
    body = {"dataset": {**grouped, "aggregate": ["petal_width"], "aggregate_func": ["avg"]}}
    response = await client.post("/models/plants/train", json={**body, "features": ["petal_width"]})
    assert response.status_code == 422 and json_of(response)["errors"][0]["loc"] == "$.features[0]"
    assert json_of(await client.get("/jobs"))["total"] == 0


async def test_batch_predictions_read_rows_so_refuse_grouping(client: httpx2.AsyncClient) -> None:
    await client.post("/datasets", json={"name": "plants", "data": measurements()})
    await make_model(client, "plants", LOGREG, target="species")
    body = {
        "dataset": {"name": "plants", "group_by": ["species"]},
        "output_dataset": "out",
    }
    response = await client.post("/models/plants/batch-predictions", json=body)
    assert response.status_code == 422, response.text
    assert "group_by" in response.text
