"""The container files, checked without a Docker engine: the compose file passes the Compose
schema and the Dockerfile hadolint; compose runs the api with `jwt` auth trusting the public
half of a key that a one-shot job creates first; the database password default is labelled
as one; the worker's metrics listen where Prometheus can reach them; and every container has
memory, CPU and process limits that hold what its settings let it use."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from service.settings import Settings, load_settings
from tests.compose import COMPOSE_FILE, compose, compose_service, volume_mounts
from tests.factories import ROOT

BIN = Path(sys.executable).parent


def test_compose_file_passes_the_compose_schema() -> None:
    done = subprocess.run(
        [BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", COMPOSE_FILE],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_passes_hadolint() -> None:
    done = subprocess.run(
        [BIN / "hadolint", "--no-color", "--failure-threshold", "warning", ROOT / "Dockerfile"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_api_verifies_jwt_with_the_public_key_the_dev_key_job_writes() -> None:
    api, dev_key = compose_service("api"), compose_service("dev-key")
    env = api["environment"]
    assert env["SERVICE__AUTH__MODE"] == "jwt"
    assert "SERVICE__AUTH__JWKS_URL" not in env
    jwks_mount, read_only = volume_mounts(api)["dev-jwks"]
    assert read_only, "the api only reads the JWKS"
    assert env["SERVICE__AUTH__JWKS_FILE"].startswith(jwks_mount + "/")
    assert "dev-signing-key" not in volume_mounts(api), "the api must not see the private key"
    # The job writes the JWKS the api reads, into the same volume, and keeps its private key
    # in a volume of its own.
    assert dev_key["command"][:2] == ["dev-key", "--jwks"]
    job_mounts = volume_mounts(dev_key)
    job_jwks = dev_key["command"][2]
    assert job_jwks.startswith(job_mounts["dev-jwks"][0] + "/")
    assert job_jwks.removeprefix(job_mounts["dev-jwks"][0]) == env[
        "SERVICE__AUTH__JWKS_FILE"
    ].removeprefix(jwks_mount)
    key_file = dev_key["environment"]["SERVICE__AUTH__DEV_KEY_FILE"]
    assert key_file.startswith(job_mounts["dev-signing-key"][0] + "/")
    assert not any(read_only for _, read_only in job_mounts.values())
    # Tokens minted by the job carry the claims the api checks.
    for claim in ("ISSUER", "AUDIENCE"):
        assert dev_key["environment"][f"SERVICE__AUTH__{claim}"] == env[f"SERVICE__AUTH__{claim}"]
    assert {"dev-signing-key", "dev-jwks"} <= set(compose()["volumes"])


def test_the_key_job_runs_to_completion_before_the_api_starts() -> None:
    depends = compose_service("api")["depends_on"]
    assert depends["dev-key"]["condition"] == "service_completed_successfully"
    assert compose_service("dev-key")["restart"] == "no"


def test_no_service_runs_with_auth_disabled() -> None:
    for name, service in compose()["services"].items():
        env = service.get("environment", {})
        assert env.get("SERVICE__AUTH__MODE", "jwt") == "jwt", name
    assert "disabled" not in COMPOSE_FILE.read_text()


def test_the_image_owns_the_key_volume_mount_points() -> None:
    """A new named volume copies the owner of the folder it is mounted on: the unprivileged
    user must own both, or the key job cannot write."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    for volume, (mount, _) in volume_mounts(compose_service("dev-key")).items():
        owned = rf"install -d -o 10001 -g 10001 -m 07\d\d {re.escape(mount)}\b"
        assert re.search(owned, dockerfile), volume


def test_every_default_database_password_is_labelled_as_one() -> None:
    lines = COMPOSE_FILE.read_text().splitlines()
    password = re.compile(r"PASSWORD|postgresql://[^@\s]*:[^@\s]*@")
    found = 0
    for i, line in enumerate(lines):
        if line.lstrip().startswith("#") or not password.search(line):
            continue
        found += 1
        comments = []
        for above in reversed(lines[:i]):
            if not above.lstrip().startswith("#"):
                break
            comments.append(above)
        assert "default database password" in " ".join(comments).lower(), line
    assert found == 2, "the DSN and the postgres service"


def test_worker_metrics_listen_for_prometheus_on_the_compose_network_only() -> None:
    worker = compose_service("worker")
    env = worker["environment"]
    assert env["SERVICE__WORKER__METRICS_ADDRESS"] == "0.0.0.0"
    assert str(env["SERVICE__WORKER__METRICS_PORT"]) in [str(p) for p in worker["expose"]]
    assert "ports" not in worker, "metrics are for the network's Prometheus, not the host"


def _bytes(size: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kmg]?)b?", str(size).lower()).groups()  # type: ignore[union-attr]
    return int(number) * int(1024 ** " kmg".index(unit or " "))


def test_every_service_has_memory_cpu_and_process_limits() -> None:
    for name, service in compose()["services"].items():
        assert _bytes(service["mem_limit"]) > 0, name
        assert 0 < float(service["cpus"]) <= 2, name
        assert int(service["pids_limit"]) > 0, name


def test_the_worker_container_holds_its_fits_and_the_api_its_model_cache() -> None:
    worker, api = compose_service("worker"), compose_service("api")
    environ = {key: str(value) for key, value in worker["environment"].items()}
    worker_settings = load_settings(ROOT / "config.toml", environ=environ).worker
    settings = Settings()
    # A fit must hit its own limit (a `resource_limit` failure) before the container's.
    overhead = 512 * 1024**2
    assert worker_settings.max_jobs * worker_settings.fit_memory_bytes + overhead < _bytes(
        worker["mem_limit"]
    )
    spool = next(t for t in api["tmpfs"] if t.startswith("/tmp:"))
    spool_bytes = _bytes(spool.partition("size=")[2])
    assert settings.models.cache_bytes + spool_bytes + overhead <= _bytes(api["mem_limit"])
