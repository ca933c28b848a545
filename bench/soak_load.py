"""The soak's mixed load: every request it makes is recorded with its time and outcome.

Each generator is a loop at a steady pace until `stop` is set: predictions, training and update
jobs, cancels, CSV uploads and exports, list queries, and bad requests and bombs that must be
4xx. What the invariants need (job ids, datasets and their row counts) is kept in `Ledger`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2
import msgspec

JSON = {"content-type": "application/json"}
PREDICT_MODEL = "soak-predict"
TRAIN_MODELS = ("soak-lin", "soak-tree")
UPDATE_MODEL = "soak-sgd"
SLOW_MODEL = "soak-slow"  # long enough to cancel
VICTIM_MODEL = "soak-victim"  # long enough to be running when its worker is killed


@dataclass
class Call:
    at: float  # time.time() when the request started
    kind: str
    status: int  # 0: no HTTP answer (connection refused, reset, timed out)
    seconds: float


@dataclass
class Ledger:
    calls: list[Call] = field(default_factory=list)
    jobs: set[str] = field(default_factory=set)  # ids of jobs the api accepted (202)
    datasets: dict[str, int] = field(default_factory=dict)  # name → rows sent
    unexpected: list[str] = field(default_factory=list)  # answers a generator did not expect

    async def call(
        self, kind: str, send: Callable[[], Awaitable[httpx2.Response]]
    ) -> httpx2.Response | None:
        start, wall = time.perf_counter(), time.time()
        try:
            response = await send()
        except httpx2.HTTPError:
            self.calls.append(Call(wall, kind, 0, time.perf_counter() - start))
            return None
        self.calls.append(Call(wall, kind, response.status_code, time.perf_counter() - start))
        return response

    def expect(self, kind: str, response: httpx2.Response | None, *ok: int) -> bool:
        """True when the answer is one of `ok`; 5xx and no answer are judged by the windows."""
        if response is None or response.status_code >= 500:
            return False
        if response.status_code not in ok:
            self.unexpected.append(f"{kind}: {response.status_code} {response.text[:200]}")
            return False
        return True


def records(n: int, seed: int) -> list[dict[str, float]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.random(), rng.random()
        rows.append({"a": a, "b": b, "y": 3 * a - 2 * b + rng.gauss(0, 0.1)})
    return rows


async def create_models(client: httpx2.AsyncClient) -> None:
    """The models the load uses, each with a first version where it predicts or updates."""
    specs: dict[str, tuple[str, dict[str, Any]]] = {
        PREDICT_MODEL: ("sklearn.linear_model.LinearRegression", {}),
        TRAIN_MODELS[0]: ("sklearn.linear_model.LinearRegression", {}),
        TRAIN_MODELS[1]: ("sklearn.tree.DecisionTreeRegressor", {"max_depth": 6}),
        UPDATE_MODEL: ("sklearn.linear_model.SGDRegressor", {}),
        SLOW_MODEL: ("sklearn.ensemble.RandomForestRegressor", {"n_estimators": 400}),
        VICTIM_MODEL: (
            "sklearn.ensemble.RandomForestRegressor",
            {"n_estimators": 600, "max_depth": 10},
        ),
    }
    for name, (model_type, settings) in specs.items():
        body = {"name": name, "model_type": model_type, "target": "y", "settings": settings}
        response = await client.post("/models", content=msgspec.json.encode(body), headers=JSON)
        if response.status_code != 201:
            raise RuntimeError(f"create {name}: {response.status_code} {response.text}")
    for name in (PREDICT_MODEL, UPDATE_MODEL):
        job = await submit(client, name, "train", records(200, 0))
        await wait_final(client, job)


async def submit(
    client: httpx2.AsyncClient, name: str, kind: str, rows: list[dict[str, float]]
) -> str:
    body = msgspec.json.encode({"data": rows})
    response = await client.post(f"/models/{name}/{kind}", content=body, headers=JSON)
    if response.status_code != 202:
        raise RuntimeError(f"{kind} {name}: {response.status_code} {response.text[:300]}")
    job_id: str = msgspec.json.decode(response.content)["id"]
    return job_id


async def wait_final(client: httpx2.AsyncClient, job_id: str, within: float = 120.0) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        status: str = msgspec.json.decode((await client.get(f"/jobs/{job_id}")).content)["status"]
        if status in ("succeeded", "failed", "cancelled"):
            return status
        await asyncio.sleep(0.2)
    raise RuntimeError(f"job {job_id} not finished within {within:.0f} s")


async def paced(
    stop: asyncio.Event, every: float, step: Callable[[int], Awaitable[None]], ledger: Ledger
) -> None:
    """Runs `step(i)` every `every` seconds (without overlapping itself) until `stop`."""
    i = 0
    while not stop.is_set():
        began = time.monotonic()
        try:
            await step(i)
        except Exception as exc:  # noted as unexpected; the load goes on
            ledger.unexpected.append(f"{getattr(step, '__name__', step)}: {exc!r}")
        i += 1
        wait = max(0.0, every - (time.monotonic() - began))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)


class Load:
    def __init__(self, client: httpx2.AsyncClient, ledger: Ledger, max_json_bytes: int) -> None:
        self.client = client
        self.ledger = ledger
        self.max_json_bytes = max_json_bytes
        self.predict_body = msgspec.json.encode({"data": [{"a": 0.5, "b": 0.25}] * 4})

    def generators(self, stop: asyncio.Event) -> list[Awaitable[None]]:
        return [
            *(paced(stop, 0.1, self.predict, self.ledger) for _ in range(2)),  # ~20 predictions/s
            paced(stop, 2.0, self.train, self.ledger),
            paced(stop, 3.0, self.update, self.ledger),
            paced(stop, 8.0, self.cancel, self.ledger),
            paced(stop, 4.0, self.upload_and_export, self.ledger),
            paced(stop, 1.0, self.lists, self.ledger),
            paced(stop, 2.0, self.bad, self.ledger),
        ]

    async def predict(self, _: int) -> None:
        url = f"/models/{PREDICT_MODEL}/predict"
        response = await self.ledger.call(
            "predict", lambda: self.client.post(url, content=self.predict_body, headers=JSON)
        )
        self.ledger.expect("predict", response, 200)

    async def _submit(self, kind: str, name: str, rows: list[dict[str, float]]) -> str | None:
        body = msgspec.json.encode({"data": rows})
        url = f"/models/{name}/{kind}"
        response = await self.ledger.call(
            kind, lambda: self.client.post(url, content=body, headers=JSON)
        )
        # 409: the model already has an active job (one at a time per model)
        if response is None or not self.ledger.expect(kind, response, 202, 409):
            return None
        if response.status_code == 409:
            return None
        job_id: str = msgspec.json.decode(response.content)["id"]
        self.ledger.jobs.add(job_id)
        return job_id

    async def train(self, i: int) -> None:
        await self._submit("train", TRAIN_MODELS[i % 2], records(300 + i % 50, i))

    async def update(self, i: int) -> None:
        await self._submit("update", UPDATE_MODEL, records(50, 10_000 + i))

    async def cancel(self, i: int) -> None:
        job_id = await self._submit("train", SLOW_MODEL, records(3000, 20_000 + i))
        if job_id is None:
            return
        await asyncio.sleep(random.uniform(0.2, 2.0))
        url = f"/jobs/{job_id}/cancel"
        response = await self.ledger.call("cancel", lambda: self.client.post(url))
        self.ledger.expect("cancel", response, 202, 409)  # 409: it finished first

    async def upload_and_export(self, i: int) -> None:
        name = f"soak-ds-{i}"
        rows = 1 + (i * 7919) % 5000
        csv = "a,b,label\n" + "".join(f"{j * 0.5},{j % 7},r{j}\n" for j in range(rows))
        self.ledger.datasets[name] = rows
        headers = {"content-type": "text/csv"}
        response = await self.ledger.call(
            "upload",
            lambda: self.client.post(f"/datasets?name={name}", content=csv, headers=headers),
        )
        if not self.ledger.expect("upload", response, 201):
            return
        url = f"/datasets/{name}/rows"
        response = await self.ledger.call(
            "export", lambda: self.client.get(url, headers={"accept": "text/csv"})
        )
        if self.ledger.expect("export", response, 200) and response is not None:
            exported = response.text.count("\n") - 1  # less the header
            if exported != rows:
                self.ledger.unexpected.append(f"export {name}: {exported} rows, sent {rows}")

    async def lists(self, i: int) -> None:
        path = ("/models?limit=50", "/jobs?limit=50", "/datasets?limit=50")[i % 3]
        response = await self.ledger.call("list", lambda: self.client.get(path))
        self.ledger.expect("list", response, 200)

    async def bad(self, i: int) -> None:
        kind, send, ok = self._bad_requests()[i % 4]
        self.ledger.expect(kind, await self.ledger.call(kind, send), *ok)

    def _bad_requests(
        self,
    ) -> list[tuple[str, Callable[[], Awaitable[httpx2.Response]], tuple[int, ...]]]:
        bomb = msgspec.json.encode(
            {
                "name": "soak-bomb",
                "model_type": "sklearn.ensemble.RandomForestRegressor",
                "target": "y",
                "settings": {"n_estimators": 100_000_000, "n_jobs": -1},
            }
        )
        too_big = b'{"data": [' + b'{"a": 1.0, "b": 2.0},' * (self.max_json_bytes // 20) + b"]}"
        post = self.client.post
        return [
            ("bomb", lambda: post("/models", content=bomb, headers=JSON), (422,)),
            (
                "over-limit body",
                lambda: post(f"/models/{PREDICT_MODEL}/predict", content=too_big, headers=JSON),
                (413,),
            ),
            ("bad json", lambda: post("/models", content=b'{"name": ', headers=JSON), (400, 422)),
            ("unknown model", lambda: self.client.get("/models/no-such-model"), (404,)),
        ]
