"""The alerts and the dashboard of `deploy/kubernetes/components/observability` ask only for
metrics that a running api and a running worker export: every metric name in every rule and
every panel query (read from the PromQL syntax tree) has samples on their /metrics after a
little real traffic (training jobs, predictions that hit, miss and evict the model cache, a
failed prediction, a stream, a webhook delivery). The api's per-model labels stay bounded: with
`metrics.per_model_limit = 1`, the second model shares the `_other` labels."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx2
import promql_parser
import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.serving.model_metrics import OTHER
from service.settings import Settings
from tests.deploy.render import render
from tests.factories import LOGREG, ROOT, json_of, make_model, wait_until
from tests.iris import iris_records
from tests.processes import worker_env
from tests.tcpproxy import free_port
from tests.webhooks.receiver import Receiver

pytestmark = pytest.mark.anyio

BOUND = 120.0  # how long the test waits for a process or a job


# -- what the manifests ask for ------------------------------------------------------------------


def rendered() -> list[dict[str, Any]]:
    """The component as the production overlay includes it."""
    return render("production", ["observability"])


def dashboard_label(doc: dict[str, Any]) -> str | None:
    """What Grafana's sidecar looks for on a ConfigMap."""
    labels: dict[str, str] = doc["metadata"].get("labels", {})
    return labels.get("grafana_dashboard")


def panel_exprs(panels: list[dict[str, Any]]) -> Iterator[str]:
    for panel in panels:
        yield from panel_exprs(panel.get("panels", []))  # rows may nest their panels
        for target in panel.get("targets", []):
            yield target["expr"]


def queries() -> dict[str, str]:
    """Every PromQL expression of the rules and the dashboards, by where it is."""
    found: dict[str, str] = {}
    for doc in rendered():
        if doc["kind"] == "PrometheusRule":
            for group in doc["spec"]["groups"]:
                for rule in group["rules"]:
                    found[f"rule {rule['alert']}"] = rule["expr"]
        elif doc["kind"] == "ConfigMap" and dashboard_label(doc) == "1":
            for file, text in doc["data"].items():
                for n, expr in enumerate(panel_exprs(json.loads(text)["panels"])):
                    # Grafana fills its variables in before Prometheus parses the query.
                    found[f"{file} query {n}"] = expr.replace("$__rate_interval", "5m")
    return found


def metric_names(expr: str) -> set[str]:
    names: set[str] = set()

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name: {expr}"
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def test_the_component_renders_rules_and_a_dashboard_with_queries() -> None:
    found = queries()
    assert any(where.startswith("rule ") for where in found)
    assert any(".json query" in where for where in found)
    alerts = {where.removeprefix("rule ") for where in found if where.startswith("rule ")}
    assert {
        "ModelsServiceApiErrorRate",
        "ModelsServiceApiLatencyP99",
        "ModelsServiceReadinessFlapping",
        "ModelsServiceJobQueueAge",
        "ModelsServiceJobsStuck",
        "ModelsServiceWebhookDeliveryFailures",
        "ModelsServiceWorkerHeartbeatMissing",
    } <= alerts


def test_metric_names_come_from_the_syntax_tree_not_from_functions_or_labels() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, route) (rate(a_seconds_bucket{route!~"x"}[5m])))'
        " > 1 and on (namespace) absent(b_total) or time() - max(c offset 5m) > 3"
    )
    assert metric_names(expr) == {"a_seconds_bucket", "b_total", "c"}


# -- what the processes export -------------------------------------------------------------------


def sample_names(exposition: str) -> set[str]:
    """Names of the samples on a /metrics page (`x_bucket`, `x_sum`, `x_count` of histogram `x`,
    `y_total` of counter `y`): a family with no sample (labelled, never used) counts as absent."""
    return {s.name for f in text_string_to_metric_families(exposition) for s in f.samples}


def samples(exposition: str, name: str) -> list[dict[str, str]]:
    """The labels of each sample of `name`, with its value under "value"."""
    return [
        {**s.labels, "value": str(s.value)}
        for f in text_string_to_metric_families(exposition)
        for s in f.samples
        if s.name == name
    ]


class Process:
    def __init__(self, command: str, env: dict[str, str], log: Path) -> None:
        self.log = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service", command],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()


def start_api(settings: Settings, port: int, log: Path, **env: str) -> Process:
    environ = worker_env(settings, "api", "text")
    environ.update(
        {
            "SERVICE__HTTP__BIND": f"127.0.0.1:{port}",
            "SERVICE__WEBHOOKS__ALLOW_PRIVATE": "true",  # the test's receiver is on loopback
            **env,
        }
    )
    return Process("api", environ, log)


async def answers(client: httpx2.AsyncClient, path: str) -> bool:
    try:
        return (await client.get(path)).status_code == 200
    except httpx2.TransportError:
        return False


async def wait_ready(client: httpx2.AsyncClient, process: Process) -> None:
    async def ready() -> bool:
        assert process.process.poll() is None, "the process exited"
        return await answers(client, "/readyz")

    await wait_until(ready, BOUND, "the api to get ready", interval=0.1)


async def train(client: httpx2.AsyncClient, name: str) -> str:
    await make_model(client, name, LOGREG, target="species", settings={"max_iter": 500})
    response = await client.post(f"/models/{name}/train", json={"data": iris_records()})
    assert response.status_code == 202, response.text
    job_id: str = json_of(response)["id"]
    return job_id


async def succeeded(client: httpx2.AsyncClient, job_id: str) -> None:
    async def done() -> bool:
        status = json_of(await client.get(f"/jobs/{job_id}"))["status"]
        assert status in {"queued", "running", "succeeded"}, status
        return bool(status == "succeeded")

    await wait_until(done, BOUND, f"job {job_id} to succeed", interval=0.1)


async def predict(client: httpx2.AsyncClient, name: str) -> httpx2.Response:
    row = {k: v for k, v in iris_records()[0].items() if k != "species"}
    return await client.post(f"/models/{name}/predict", json={"data": [row, row]})


async def test_every_metric_of_the_alerts_and_dashboards_is_exported_by_a_running_process(
    settings: Settings, database_url: str, tmp_path: Path
) -> None:
    wanted = {name: where for where, expr in queries().items() for name in metric_names(expr)}
    receiver = await Receiver().start()
    metrics_port = free_port()
    worker_environ = worker_env(settings, f"observe-{time.monotonic_ns()}", "text")
    worker_environ.update(
        {
            "SERVICE__WORKER__METRICS_PORT": str(metrics_port),
            "SERVICE__WORKER__HEARTBEAT_SECONDS": "0.2",
            "SERVICE__METRICS__JOB_STATS_SECONDS": "0.2",
            "SERVICE__WEBHOOKS__ALLOW_PRIVATE": "true",
            "SERVICE__WEBHOOKS__POLL_SECONDS": "0.2",
        }
    )
    worker = Process("worker", worker_environ, tmp_path / "worker.log")
    port = free_port()
    api = start_api(settings, port, tmp_path / "api-1.log")
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx2.AsyncClient(base_url=base, timeout=30) as client:
            await wait_ready(client, api)
            hook = {"url": receiver.url, "events": ["job.succeeded"]}
            assert (await client.post("/webhooks", json=hook)).status_code == 201
            jobs = [await train(client, "alpha"), await train(client, "beta")]
            for job_id in jobs:
                await succeeded(client, job_id)
        await wait_until(lambda: len(receiver.requests) >= 2, BOUND, "webhook deliveries")
        api.stop()

        # Room in the model cache for either version, not both: the second load evicts.
        conn = await asyncpg.connect(database_url)
        try:
            cache_bytes = await conn.fetchval("SELECT max(octet_length(data)) FROM artifacts")
        finally:
            await conn.close()
        api = start_api(
            settings,
            port,
            tmp_path / "api-2.log",
            SERVICE__MODELS__CACHE_BYTES=str(cache_bytes),
            SERVICE__METRICS__PER_MODEL_LIMIT="1",
        )
        async with httpx2.AsyncClient(base_url=base, timeout=30) as client:
            await wait_ready(client, api)
            for name in ("alpha", "beta", "alpha", "alpha"):
                assert (await predict(client, name)).status_code == 200
            assert (await predict(client, "nobody")).status_code == 404
            stream = await client.get(f"/jobs/{jobs[0]}/events")  # a finished job: one message
            assert stream.status_code == 200
            api_page = (await client.get("/metrics")).text
        async with httpx2.AsyncClient(timeout=30) as client:
            worker_page = (await client.get(f"http://127.0.0.1:{metrics_port}/")).text
    finally:
        api.stop()
        worker.stop()
        await receiver.stop()

    exported = sample_names(api_page) | sample_names(worker_page)
    missing = {name: where for name, where in wanted.items() if name not in exported}
    assert missing == {}, "asked for by the manifests, exported by no process"

    # Bounded labels: alpha came first and has its own; beta, and the model that does not
    # exist, share the overflow labels.
    rows = samples(api_page, "model_predict_rows_total")
    assert {(s["tenant"], s["model"]) for s in rows} == {("default", "alpha"), (OTHER, OTHER)}
    errors = samples(api_page, "model_predict_errors_total")
    assert [(s["model"], s["reason"]) for s in errors] == [(OTHER, "NotFound")]
    evictions = samples(api_page, "model_cache_evictions_total")
    assert {s["model"] for s in evictions} <= {"alpha", OTHER} and evictions
    cache = {(s["model"], s["result"]): s for s in samples(api_page, "model_cache_requests_total")}
    counts = {key: float(s["value"]) for key, s in cache.items()}
    # alpha is loaded again after beta evicted it
    assert counts == {
        ("alpha", "miss"): 2,
        ("alpha", "hit"): 1,
        (OTHER, "miss"): 1,
        (OTHER, "hit"): 0,
    }
    outcomes = samples(worker_page, "worker_job_outcomes_total")
    assert {(s["kind"], s["outcome"]) for s in outcomes} == {("train", "succeeded")}
