"""What the Kubernetes manifests promise, in every overlay and with every component: the names
other tools rely on; probes on real routes and ports; requests and limits on every container,
large enough for what the settings let each process use; non-root, read-only, capability-free,
seccomp-confined pods; pinned images; secrets referenced, never committed; grace periods longer
than the pause and the drain they must hold; only real settings in the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from service import __version__
from service.devtools.keys import DEV_AUDIENCE, DEV_ISSUER
from service.http.endpoints import OPERATIONS
from service.settings import CONFIG_ENV, ENV_PREFIX, Settings
from tests.deploy.pods import (
    SECRET_VARIABLES,
    container,
    containers,
    image_tag,
    pre_stop_seconds,
    quantity,
    settings,
)
from tests.deploy.render import KUSTOMIZE_ROOT, combinations, find, label, of_kind, render

COMBINATIONS = combinations()
IDS = [label(*c) for c in COMBINATIONS]
GET_ROUTES = {op.path for op in OPERATIONS if op.method == "GET"}
# What a process of the service needs besides what its settings size (interpreter, libraries).
PROCESS_OVERHEAD = 512 * 1024**2


@pytest.fixture(params=COMBINATIONS, ids=IDS)
def objects(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    overlay, components = request.param
    return render(overlay, components)


def test_the_names_other_tools_rely_on() -> None:
    objects = render("deploy/kubernetes/overlays/dev")
    api = container(objects, "models-api", "api")
    assert api.spec["args"] == ["api"]
    assert {"name": "http", "containerPort": 8000, "protocol": "TCP"} in api.spec["ports"]
    assert container(objects, "models-worker", "worker").spec["args"] == ["worker"]
    assert container(objects, "models-migrate", "migrate").spec["args"] == ["migrate"]
    service = find(objects, "Service", "models-api")
    assert (
        service["spec"]["selector"].items()
        <= api.workload["spec"]["template"]["metadata"]["labels"].items()
    )
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    config = find(objects, "ConfigMap", "models-config")
    assert config["metadata"]["name"].startswith("models-config")
    assert "config.toml" in config["data"]


def test_every_service_container_reads_the_mounted_settings_file(
    objects: list[dict[str, Any]], tmp_path: Path
) -> None:
    for c in containers(objects):
        if not c.is_service:
            continue
        env = {var["name"]: var for var in c.spec["env"]}
        path = env[CONFIG_ENV]["value"]
        assert path.endswith("/config.toml"), c.label
        mount = c.mounts()[path.rsplit("/", 1)[0]]
        assert mount["configMap"]["name"].startswith("models-config"), c.label
        settings(objects, c, tmp_path)  # loads: the file and every variable are valid


def test_variables_name_real_settings(objects: list[dict[str, Any]]) -> None:
    sections = {f.name: f.type for f in msgspec.structs.fields(Settings)}
    for c in containers(objects):
        if not c.is_service:
            continue
        names = [var["name"] for var in c.spec["env"]]
        for source in c.spec.get("envFrom", []):
            names += list(find(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
        for name in names:
            if name == CONFIG_ENV:
                continue
            assert name.startswith(ENV_PREFIX), f"{c.label}: {name} is no setting"
            section, _, key = name.removeprefix(ENV_PREFIX).lower().partition("__")
            assert section in sections, f"{c.label}: {name}"
            keys = {f.name for f in msgspec.structs.fields(sections[section])}
            assert key in keys, f"{c.label}: {name} is no setting"


def test_probes_use_real_routes_and_ports(objects: list[dict[str, Any]], tmp_path: Path) -> None:
    api = container(objects, "models-api", "api")
    http = api.port("http")
    assert settings(objects, api, tmp_path).http.port == http
    expected = {"startupProbe": "/livez", "livenessProbe": "/livez", "readinessProbe": "/readyz"}
    for probe, path in expected.items():
        get = api.spec[probe]["httpGet"]
        assert get["path"] == path and path in GET_ROUTES, probe
        assert api.port(get["port"]) == http, probe
    worker = container(objects, "models-worker", "worker")
    for probe in ("startupProbe", "livenessProbe"):
        assert worker.spec[probe]["exec"]["command"] == [
            "python", "-m", "service", "worker", "--check",
        ]  # fmt: skip
        # Each run starts an interpreter: give it time, and never call it dead on one miss.
        assert worker.spec[probe]["timeoutSeconds"] >= 5
        assert worker.spec[probe].get("failureThreshold", 3) >= 3
    worker_settings = settings(objects, worker, tmp_path).worker
    assert worker.port("metrics") == worker_settings.metrics_port
    assert worker_settings.metrics_address == "0.0.0.0"


def test_probes_are_declared_on_every_long_running_container(
    objects: list[dict[str, Any]],
) -> None:
    for c in containers(objects, init=False):
        if c.workload["kind"] in ("Job", "CronJob"):
            continue
        assert "livenessProbe" in c.spec, c.label
        assert "readinessProbe" in c.spec or "startupProbe" in c.spec, c.label


def test_every_container_requests_and_limits_cpu_and_memory(
    objects: list[dict[str, Any]],
) -> None:
    for c in containers(objects):
        resources = c.spec["resources"]
        for resource in ("cpu", "memory"):
            request = quantity(resources["requests"][resource])
            limit = quantity(resources["limits"][resource])
            assert 0 < request <= limit, f"{c.label}: {resource}"


def test_memory_limits_hold_what_the_settings_let_each_process_use(
    objects: list[dict[str, Any]], tmp_path: Path
) -> None:
    worker = container(objects, "models-worker", "worker")
    config = settings(objects, worker, tmp_path).worker
    # A fit hits its own limit (a `resource_limit` failure) before the container's OOM killer.
    limit = quantity(worker.spec["resources"]["limits"]["memory"])
    assert config.max_jobs * config.fit_memory_bytes + PROCESS_OVERHEAD < limit
    api = container(objects, "models-api", "api")
    spool = api.mounts()["/tmp"]["emptyDir"]
    assert spool["medium"] == "Memory", "a memory-backed spool counts against the limit"
    cache = settings(objects, api, tmp_path).models.cache_bytes
    limit = quantity(api.spec["resources"]["limits"]["memory"])
    assert cache + quantity(spool["sizeLimit"]) + PROCESS_OVERHEAD <= limit


def test_every_pod_runs_unprivileged_on_a_read_only_root(objects: list[dict[str, Any]]) -> None:
    for c in containers(objects):
        assert c.security("runAsNonRoot") is True, c.label
        assert c.security("runAsUser") not in (None, 0), c.label
        if c.is_service:
            assert c.security("runAsUser") == 10001, c.label  # the image's USER
        assert c.security("readOnlyRootFilesystem") is True, c.label
        assert c.security("allowPrivilegeEscalation") is False, c.label
        assert c.security("privileged") in (None, False), c.label
        capabilities = c.security("capabilities")
        assert capabilities["drop"] == ["ALL"] and not capabilities.get("add"), c.label
        assert c.security("seccompProfile") == {"type": "RuntimeDefault"}, c.label
        assert c.pod.get("automountServiceAccountToken") is False, c.label
        assert not c.pod.get("hostNetwork") and not c.pod.get("hostPID"), c.label


def test_service_containers_write_only_to_their_own_volumes(
    objects: list[dict[str, Any]],
) -> None:
    for c in containers(objects):
        if not c.is_service:
            continue
        assert "emptyDir" in c.mounts()["/tmp"], c.label
        for mount in c.spec["volumeMounts"]:
            volume = c.mounts()[mount["mountPath"]]
            writable = "emptyDir" in volume
            assert writable or mount.get("readOnly") is True, f"{c.label}: {mount}"


def test_images_are_pinned(objects: list[dict[str, Any]]) -> None:
    for c in containers(objects):
        image = c.spec["image"]
        tag = image_tag(image)
        assert tag or "@sha256:" in image, f"{c.label}: {image} has no tag"
        assert tag != "latest", f"{c.label}: {image}"
        if c.is_service:
            assert tag == __version__, f"{c.label}: the image of this version is {__version__}"
        assert c.spec.get("imagePullPolicy") != "Always", c.label


def test_no_secret_value_is_committed(objects: list[dict[str, Any]]) -> None:
    for secret in of_kind(objects, "Secret"):
        assert not secret.get("data") and not secret.get("stringData"), secret["metadata"]
    for c in containers(objects):
        for var in c.spec.get("env", []):
            if var["name"] in SECRET_VARIABLES or "PASSWORD" in var["name"]:
                assert "secretKeyRef" in var.get("valueFrom", {}), f"{c.label}: {var['name']}"
            assert "://" not in var.get("value", "") or "@" not in var["value"], c.label
    for config in of_kind(objects, "ConfigMap"):
        assert not set(config["data"]) & SECRET_VARIABLES, config["metadata"]["name"]
    for kustomization in KUSTOMIZE_ROOT.rglob("kustomization.yaml"):
        assert "secretGenerator" not in kustomization.read_text(), kustomization


def test_grace_periods_outlast_the_pause_and_the_drain(
    objects: list[dict[str, Any]], tmp_path: Path
) -> None:
    api = container(objects, "models-api", "api")
    pause = pre_stop_seconds(api.spec)
    # The endpoint removal must reach every proxy before the api stops listening.
    assert pause >= 5
    http = settings(objects, api, tmp_path).http
    # After SIGTERM: the lame-duck answers (at most keep_alive_timeout), then the drain.
    stopping = pause + http.keep_alive_timeout + http.graceful_timeout
    assert api.pod["terminationGracePeriodSeconds"] > stopping
    worker = container(objects, "models-worker", "worker")
    wait = settings(objects, worker, tmp_path).worker.shutdown_wait_seconds
    grace = worker.pod["terminationGracePeriodSeconds"]
    assert grace > pre_stop_seconds(worker.spec) + wait


def test_dev_accepts_the_tokens_the_development_key_mints(tmp_path: Path) -> None:
    """`python -m service token` on the developer's machine stamps these claims."""
    objects = render("dev")
    api = container(objects, "models-api", "api")
    auth = settings(objects, api, tmp_path).auth
    assert (auth.mode, auth.issuer, auth.audience) == ("jwt", DEV_ISSUER, DEV_AUDIENCE)
    jwks = api.mounts()[auth.jwks_file.rsplit("/", 1)[0]]
    assert jwks["configMap"]["name"] == "models-dev-jwks"


def test_production_verifies_tokens_with_its_identity_provider(tmp_path: Path) -> None:
    objects = render("production")
    auth = settings(objects, container(objects, "models-api", "api"), tmp_path).auth
    assert auth.mode == "jwt" and auth.jwks_url.startswith("https://") and not auth.jwks_file
    assert auth.issuer and auth.audience
