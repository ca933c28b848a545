"""What the rendered manifests say about each pod and container, in the terms the policy tests
check: effective security settings (the container's, else the pod's), resource quantities,
the preStop pause, and the settings a container of the service would load."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.settings import CONFIG_ENV, SECRETS, Settings, load_settings
from tests.deploy.render import find

IMAGE = "models-service"  # the service's own image, before its tag
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
# Stands in for a secret's value when settings are loaded: long enough for the artifact keys.
SECRET_STAND_IN = "s" * 48


@dataclass(frozen=True)
class Container:
    workload: dict[str, Any]
    pod: dict[str, Any]  # the pod template's spec
    spec: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.workload['kind']}/{self.workload['metadata']['name']}/{self.spec['name']}"

    @property
    def is_service(self) -> bool:
        return image_name(self.spec["image"]) == IMAGE

    def security(self, key: str) -> Any:
        """A securityContext setting, the container's first, else its pod's."""
        own = self.spec.get("securityContext", {})
        return own[key] if key in own else self.pod.get("securityContext", {}).get(key)

    def port(self, name_or_number: str | int) -> int:
        """The number of one of this container's ports, by name or number."""
        for port in self.spec.get("ports", []):
            if name_or_number in (port.get("name"), port["containerPort"]):
                return int(port["containerPort"])
        raise AssertionError(f"{self.label} declares no port {name_or_number!r}")

    def mounts(self) -> dict[str, dict[str, Any]]:
        """Mount path → the pod's volume mounted there."""
        volumes = {volume["name"]: volume for volume in self.pod.get("volumes", [])}
        return {m["mountPath"]: volumes[m["name"]] for m in self.spec.get("volumeMounts", [])}


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    pod: dict[str, Any] = spec["template"]["spec"]
    return pod


def containers(objects: Sequence[dict[str, Any]], *, init: bool = True) -> Iterator[Container]:
    """Every container of every workload (init containers too unless `init=False`)."""
    for workload in objects:
        if workload["kind"] not in WORKLOADS:
            continue
        pod = pod_spec(workload)
        kinds = ("initContainers", "containers") if init else ("containers",)
        for kind in kinds:
            for spec in pod.get(kind, []):
                yield Container(workload, pod, spec)


def container(objects: Sequence[dict[str, Any]], workload: str, name: str) -> Container:
    found = [
        c
        for c in containers(objects)
        if (c.workload["metadata"]["name"], c.spec["name"]) == (workload, name)
    ]
    assert len(found) == 1, f"{len(found)} containers {name} in {workload}"
    return found[0]


def image_name(image: str) -> str:
    """`registry:5000/team/name:tag@sha256:...` → `name`."""
    last = image.split("@")[0].rsplit("/", 1)[-1]
    return last.split(":")[0]


def image_tag(image: str) -> str | None:
    last = image.split("@")[0].rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


_SUFFIXES = {
    "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
}  # fmt: skip


def quantity(value: str | int | float) -> float:
    """A Kubernetes quantity (`500m`, `2`, `1536Mi`, `4Gi`) as a plain number."""
    number, suffix = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(value)).groups()  # type: ignore[union-attr]
    return float(number) * _SUFFIXES.get(suffix, 1.0) if suffix else float(number)


def pre_stop_seconds(spec: dict[str, Any]) -> int:
    """The preStop pause: the kubelet's `sleep` action or an exec `["sleep", "N"]`; 0 if none."""
    pre_stop = spec.get("lifecycle", {}).get("preStop")
    if pre_stop is None:
        return 0
    if "sleep" in pre_stop:
        return int(pre_stop["sleep"]["seconds"])
    command = pre_stop["exec"]["command"]
    assert command[0] == "sleep" and len(command) == 2, command
    return int(command[1])


def environment(objects: Sequence[dict[str, Any]], c: Container) -> dict[str, str]:
    """The variables the container starts with: values, ConfigMap keys and whole ConfigMaps as
    rendered; a secret's value is a stand-in, since none is in the manifests."""
    env: dict[str, str] = {}
    for source in c.spec.get("envFrom", []):
        ref = source["configMapRef"]["name"]
        data = find(objects, "ConfigMap", ref)["data"]
        env.update({source.get("prefix", "") + key: value for key, value in data.items()})
    for var in c.spec.get("env", []):
        if "value" in var:
            env[var["name"]] = str(var["value"])
        elif "configMapKeyRef" in var["valueFrom"]:
            ref = var["valueFrom"]["configMapKeyRef"]
            env[var["name"]] = find(objects, "ConfigMap", ref["name"])["data"][ref["key"]]
        elif "secretKeyRef" in var["valueFrom"] and not var["valueFrom"]["secretKeyRef"].get(
            "optional"
        ):
            env[var["name"]] = SECRET_STAND_IN
    return env


def mounted_file(objects: Sequence[dict[str, Any]], c: Container, path: str) -> str:
    """The content of the file at `path` in the container, from a mounted ConfigMap."""
    for mount_path, volume in c.mounts().items():
        if path.startswith(mount_path.rstrip("/") + "/") and "configMap" in volume:
            data = find(objects, "ConfigMap", volume["configMap"]["name"])["data"]
            key = path.removeprefix(mount_path.rstrip("/") + "/")
            assert key in data, f"{c.label}: no key {key} in the ConfigMap mounted at {mount_path}"
            text: str = data[key]
            return text
    raise AssertionError(f"{c.label}: nothing from a ConfigMap is mounted at {path}")


def settings(objects: Sequence[dict[str, Any]], c: Container, tmp: Path) -> Settings:
    """The settings the container loads: its mounted config file overridden by its variables."""
    env = environment(objects, c)
    config = tmp / "config.toml"
    config.write_text(mounted_file(objects, c, env[CONFIG_ENV]))
    return load_settings(config, environ={**env, CONFIG_ENV: str(config)})


SECRET_VARIABLES = frozenset(SECRETS.values())
