"""Who runs how many, who may reach whom, who scrapes what: one api and one worker in dev and
no autoscaler; in production at least two api pods under an autoscaler whose maximum still
fits PostgreSQL's connections, spread over nodes; disruption budgets for both; rollouts that
never lower capacity; network policies that open the api (and let it reach its identity
provider) and close the worker; ServiceMonitors that point at real Services, ports and routes;
a migrate Job that retries and that an upgrade applies first with all it needs; and a README
that names every Secret key the pods read."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from service.http.endpoints import OPERATIONS
from tests.deploy.pods import Container, container, containers, settings
from tests.deploy.render import combinations, find, label, of_kind, render
from tests.factories import ROOT

COMBINATIONS = combinations()
GET_ROUTES = {op.path for op in OPERATIONS if op.method == "GET"}
# PostgreSQL's default max_connections, less its superuser_reserved_connections.
POSTGRES_CONNECTIONS = 100 - 3
# Connections a process opens besides its pool: the model-change, stream and webhook listeners.
LISTENERS = 3


@pytest.fixture(params=COMBINATIONS, ids=[label(*c) for c in COMBINATIONS])
def objects(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    overlay, components = request.param
    return render(overlay, components)


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def _template_labels(c: Container) -> dict[str, str]:
    labels: dict[str, str] = c.workload["spec"]["template"]["metadata"]["labels"]
    return labels


def _pod_labels(objects: list[dict[str, Any]], name: str) -> dict[str, str]:
    labels: dict[str, str] = find(objects, "Deployment", name)["spec"]["template"]["metadata"][
        "labels"
    ]
    return labels


def test_dev_runs_one_of_each_and_no_autoscaler() -> None:
    objects = render("dev")
    for name in ("models-api", "models-worker"):
        assert find(objects, "Deployment", name)["spec"].get("replicas", 1) == 1
    assert of_kind(objects, "HorizontalPodAutoscaler") == []
    for name in ("models-postgres", "models-redis"):
        assert find(objects, "Service", name)


def test_production_runs_at_least_two_api_pods_under_an_autoscaler() -> None:
    objects = render("production")
    (hpa,) = of_kind(objects, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "models-api",
    }
    assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    # The autoscaler owns the count: a number in the Deployment would be put back at each apply.
    assert "replicas" not in find(objects, "Deployment", "models-api")["spec"]
    assert find(objects, "Deployment", "models-worker")["spec"]["replicas"] >= 2
    # CPU utilisation is measured against the request: there must be one.
    api = container(objects, "models-api", "api")
    assert api.spec["resources"]["requests"]["cpu"]
    # Two pods on one node would be one failure away from an outage.
    for name in ("models-api", "models-worker"):
        pod = find(objects, "Deployment", name)["spec"]["template"]
        spread = {
            c["topologyKey"]
            for c in pod["spec"]["topologySpreadConstraints"]
            if _selects(c["labelSelector"]["matchLabels"], pod["metadata"]["labels"])
        }
        assert "kubernetes.io/hostname" in spread, name
    # Production has no in-cluster database or queue.
    assert {"StatefulSet"} & {o["kind"] for o in objects} == set()


def test_the_largest_production_fits_postgresql_connections(tmp_path: Path) -> None:
    objects = render("production")
    (hpa,) = of_kind(objects, "HorizontalPodAutoscaler")
    api = container(objects, "models-api", "api")
    worker = container(objects, "models-worker", "worker")
    per_api = settings(objects, api, tmp_path).database.pool_max + LISTENERS
    per_worker = settings(objects, worker, tmp_path).database.pool_max + LISTENERS
    workers = find(objects, "Deployment", "models-worker")["spec"]["replicas"]
    migrate = 1
    used = hpa["spec"]["maxReplicas"] * per_api + workers * per_worker + migrate
    assert used <= POSTGRES_CONNECTIONS


def test_disruption_budgets_cover_api_and_worker(objects: list[dict[str, Any]]) -> None:
    budgets = of_kind(objects, "PodDisruptionBudget")
    for name in ("models-api", "models-worker"):
        labels = _pod_labels(objects, name)
        (budget,) = [b for b in budgets if _selects(b["spec"]["selector"]["matchLabels"], labels)]
        # maxUnavailable: a single pod (dev) can still be drained; minAvailable would block it.
        assert budget["spec"].get("maxUnavailable") == 1, name


def test_rollouts_never_lower_capacity(objects: list[dict[str, Any]]) -> None:
    for name in ("models-api", "models-worker"):
        strategy = find(objects, "Deployment", name)["spec"]["strategy"]
        assert strategy["rollingUpdate"]["maxUnavailable"] == 0, name


def _policy_for(objects: list[dict[str, Any]], name: str) -> dict[str, Any]:
    labels = (
        _pod_labels(objects, name)
        if name != "models-migrate"
        else (find(objects, "Job", name)["spec"]["template"]["metadata"]["labels"])
    )
    policies = [
        p
        for p in of_kind(objects, "NetworkPolicy")
        if _selects(p["spec"]["podSelector"].get("matchLabels", {}), labels)
    ]
    assert len(policies) == 1, name
    assert set(policies[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}, name
    return policies[0]


def _egress_ports(policy: dict[str, Any]) -> set[int]:
    return {port["port"] for rule in policy["spec"]["egress"] for port in rule["ports"]}


def test_network_policies_open_the_api_and_close_the_worker(
    objects: list[dict[str, Any]],
) -> None:
    api = _policy_for(objects, "models-api")
    assert [port["port"] for rule in api["spec"]["ingress"] for port in rule["ports"]] == [
        container(objects, "models-api", "api").port("http")
    ]
    # DNS, PostgreSQL, Redis, and HTTPS for the identity provider's keys.
    assert {53, 5432, 6379, 443} <= _egress_ports(api)
    # Webhook receivers, over https and http.
    assert {53, 5432, 6379, 443, 80} <= _egress_ports(_policy_for(objects, "models-worker"))
    assert _egress_ports(_policy_for(objects, "models-migrate")) == {53, 5432}
    assert not _policy_for(objects, "models-migrate")["spec"].get("ingress")
    worker_ingress = _policy_for(objects, "models-worker")["spec"].get("ingress", [])
    metrics = container(objects, "models-worker", "worker").port("metrics")
    if not of_kind(objects, "ServiceMonitor"):
        assert worker_ingress == []
        return
    # With the monitoring component, Prometheus reaches the metrics port and nothing else.
    for rule in worker_ingress:
        assert [port["port"] for port in rule["ports"]] == [metrics]
        for peer in rule["from"]:
            labels = peer["podSelector"]["matchLabels"]
            assert labels == {"app.kubernetes.io/name": "prometheus"}


MONITORED = [c for c in COMBINATIONS if "monitoring" in c[1]]


@pytest.mark.parametrize(("overlay", "components"), MONITORED, ids=[label(*c) for c in MONITORED])
def test_service_monitors_scrape_real_services_ports_and_routes(
    overlay: str, components: tuple[str, ...]
) -> None:
    objects = render(overlay, components)
    monitors = of_kind(objects, "ServiceMonitor")
    assert monitors
    scraped = set()
    for monitor in monitors:
        selector = monitor["spec"]["selector"]["matchLabels"]
        services = [
            s for s in of_kind(objects, "Service") if _selects(selector, s["metadata"]["labels"])
        ]
        assert len(services) == 1, monitor["metadata"]["name"]
        service = services[0]
        for endpoint in monitor["spec"]["endpoints"]:
            (port,) = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
            selector = service["spec"]["selector"]
            pods = [c for c in containers(objects) if _selects(selector, _template_labels(c))]
            assert pods, service["metadata"]["name"]
            for c in pods:
                number = c.port(port["targetPort"])
                scraped.add((c.spec["name"], number))
                if c.spec["name"] == "api":
                    assert endpoint["path"] in GET_ROUTES
    assert scraped == {("api", 8000), ("worker", 9101)}


def test_the_migrate_job_retries_and_cleans_up(tmp_path: Path) -> None:
    objects = render("production")
    job = find(objects, "Job", "models-migrate")
    assert job["spec"]["backoffLimit"] >= 3  # the database may still be coming up
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    # Existing rows move to the default tenant: the one the api serves them as.
    migrate = container(objects, "models-migrate", "migrate")
    api = container(objects, "models-api", "api")
    assert (
        settings(objects, migrate, tmp_path).auth.default_tenant
        == settings(objects, api, tmp_path).auth.default_tenant
    )


# `kubectl apply -k OVERLAY -l` with this selector is the first step of an upgrade (README):
# the migrate Job and what it needs, before any new api or worker pod.
FIRST_STEP = ("config", "database", "queue", "migrate")
FIRST_STEP_SELECTOR = f"app.kubernetes.io/component in ({','.join(FIRST_STEP)})"


def _component(obj: dict[str, Any]) -> str | None:
    component: str | None = obj["metadata"].get("labels", {}).get("app.kubernetes.io/component")
    return component


@pytest.mark.parametrize("overlay", ["dev", "production"])
def test_the_first_upgrade_step_holds_all_the_migrate_job_needs(overlay: str) -> None:
    objects = render(overlay)
    first = [obj for obj in objects if _component(obj) in FIRST_STEP]
    applied = {(obj["kind"], obj["metadata"]["name"]) for obj in first}
    pod = find(first, "Job", "models-migrate")["spec"]["template"]["spec"]
    needed = (
        {("ServiceAccount", pod["serviceAccountName"])} if "serviceAccountName" in pod else set()
    )
    needed |= {("ConfigMap", v["configMap"]["name"]) for v in pod["volumes"] if "configMap" in v}
    (migrate,) = pod["containers"]
    needed |= {("ConfigMap", s["configMapRef"]["name"]) for s in migrate.get("envFrom", [])}
    assert needed <= applied
    # The Secret is the operator's; the database must answer before the Job can finish.
    refs = {v["valueFrom"]["secretKeyRef"]["name"] for v in migrate["env"] if "valueFrom" in v}
    assert refs == {"models-secrets"}
    if overlay == "dev":
        assert {("StatefulSet", "models-postgres"), ("Service", "models-postgres")} <= applied
    # No pod of the new release runs before its schema is there.
    assert not [name for kind, name in applied if name in ("models-api", "models-worker")]
    readme = (ROOT / "README.md").read_text()
    assert f"-l '{FIRST_STEP_SELECTOR}'" in readme


def test_the_readme_names_every_secret_key_the_pods_read() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Deploying on Kubernetes", 1)[1].split("\n## ", 1)[0]
    for overlay in ("dev", "production"):
        for c in containers(render(overlay)):
            for var in c.spec.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] in section and ref["key"] in section, ref


def test_the_api_may_reach_its_identity_provider(tmp_path: Path) -> None:
    objects = render("production")
    auth = settings(objects, container(objects, "models-api", "api"), tmp_path).auth
    jwks = urlsplit(auth.jwks_url)
    port = jwks.port or {"https": 443, "http": 80}[jwks.scheme]
    assert port in _egress_ports(_policy_for(objects, "models-api"))
