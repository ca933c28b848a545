"""How a container of a rendered pod spec becomes a local process: its argv (the image's
ENTRYPOINT/CMD as `command`/`args` override them), its environment (the image's ENV, `envFrom`,
`env` with `value`, `configMapKeyRef`, `secretKeyRef`, `fieldRef` and `$(VAR)` references), its
volumes as local directories, and the ports it listens on.

What differs from a node, on purpose, and why:
- The image's `python` (its venv at /opt/venv) is this venv's interpreter, and its WORKDIR
  (/app, where the image copies config.toml, migrations/ and service/) is this checkout.
- Volumes are directories under the pod's own temporary folder; every `env` value and every
  argument that names a path under a `mountPath` is rewritten to the local directory, since a
  process here cannot see the path the container would. An `emptyDir` on /tmp becomes TMPDIR.
- Every pod has a network namespace of its own, so two pods may both listen on 8000; here they
  share this machine's, so each pod listens on free ports instead (`SERVICE__HTTP__BIND`,
  `SERVICE__WORKER__METRICS_PORT`), and its probes and the Service follow them.
- A container's hostname is its pod's name, which the worker uses to tell its heartbeat from
  other replicas'; here every process has the machine's, so `SERVICE_WORKER_ID` says it.
- `readOnlyRootFilesystem`, the user id, the capabilities and the resource limits are not
  enforced here.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.deploy.image import image
from tests.factories import ROOT
from tests.tcpproxy import free_port

PYTHONS = {"python", "python3", "python3.11", "/opt/venv/bin/python", "/usr/local/bin/python"}
LISTEN_SETTINGS = ("SERVICE__HTTP__BIND", "SERVICE__WORKER__METRICS_PORT")
_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


@dataclass
class Site:
    """What the test supplies: the Secrets and ConfigMaps that the manifests refer to and an
    operator creates before `kubectl apply` (no secret is committed), and `env`, settings of
    the test itself (which win over the manifests')."""

    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    config_maps: dict[str, dict[str, str]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class ContainerProcess:
    """Everything needed to start one container, and to run commands inside it."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    ports: dict[str | int, int]  # containerPort name or number → local port
    spec: Mapping[str, Any]


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` references: defined ones are replaced, others kept; `$$` is `$`."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _REFERENCE.sub(replace, text)


def local_argv(command: list[str]) -> list[str]:
    """A command as the container would run it, with the image's python being this venv's."""
    return [sys.executable if command[0] in PYTHONS else command[0], *command[1:]]


class PodEnvironment:
    """Resolves references of one pod's containers against the rendered objects and the site."""

    def __init__(
        self,
        objects: list[dict[str, Any]],
        site: Site,
        pod_name: str,
        labels: Mapping[str, str],
        volume_root: Path,
    ) -> None:
        self.objects = objects
        self.site = site
        self.pod_name = pod_name
        self.labels = labels
        self.volume_root = volume_root

    def config_map(self, name: str) -> dict[str, str]:
        for obj in self.objects:
            if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == name:
                data: dict[str, str] = obj.get("data", {})
                return data
        assert name in self.site.config_maps, f"no ConfigMap {name} rendered or provided"
        return self.site.config_maps[name]

    def secret(self, name: str) -> dict[str, str]:
        assert name in self.site.secrets, f"the test provides no Secret {name}"
        return self.site.secrets[name]

    def _source(self, ref_kind: str, ref: Mapping[str, Any]) -> str | None:
        data = self.config_map(ref["name"]) if ref_kind == "configMap" else self.secret(ref["name"])
        if ref["key"] not in data:
            assert ref.get("optional", False), f"{ref_kind} {ref['name']} has no key {ref['key']}"
            return None
        return data[ref["key"]]

    def _field(self, path: str) -> str:
        if path == "metadata.name":
            return self.pod_name
        if path == "metadata.namespace":
            return "default"
        if path.startswith("metadata.labels['"):
            return self.labels.get(path[len("metadata.labels['") : -2], "")
        if path in ("status.podIP", "status.hostIP"):
            return "127.0.0.1"
        if path == "spec.nodeName":
            return "localhost"
        raise AssertionError(f"a fieldRef this kubelet cannot resolve: {path}")

    def volumes(self, spec: Mapping[str, Any]) -> dict[str, Path]:
        """Each volume of the pod as a local directory."""
        found = {}
        for volume in spec.get("volumes", []):
            path = self.volume_root / volume["name"]
            path.mkdir(parents=True)
            if "emptyDir" in volume:
                pass
            elif "configMap" in volume or "secret" in volume:
                source = volume.get("configMap") or volume["secret"]
                data = (
                    self.config_map(source["name"])
                    if "configMap" in volume
                    else self.secret(source["secretName"])
                )
                items = source.get("items") or [{"key": k, "path": k} for k in data]
                for item in items:
                    target = path / item["path"]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(data[item["key"]])
                    target.chmod(item.get("mode", source.get("defaultMode", 0o644)))
            else:
                raise AssertionError(f"a volume this kubelet cannot provide: {volume}")
            found[volume["name"]] = path
        return found

    def _env(self, container: Mapping[str, Any]) -> dict[str, str]:
        """The image's ENV, then `envFrom`, then `env`, each over the one before."""
        built = image()
        env = {k: v for k, v in built.env.items() if k not in ("PATH", "VIRTUAL_ENV")}
        env["PATH"] = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"
        env["HOSTNAME"] = self.pod_name
        for source in container.get("envFrom", []):
            prefix = source.get("prefix", "")
            if "configMapRef" in source:
                values = self.config_map(source["configMapRef"]["name"])
            else:
                values = self.secret(source["secretRef"]["name"])
            env.update({prefix + k: v for k, v in values.items()})
        for var in container.get("env", []):
            value: str | None
            if "value" in var:
                value = expand(var["value"], env)
            elif "configMapKeyRef" in var.get("valueFrom", {}):
                value = self._source("configMap", var["valueFrom"]["configMapKeyRef"])
            elif "secretKeyRef" in var.get("valueFrom", {}):
                value = self._source("secret", var["valueFrom"]["secretKeyRef"])
            elif "fieldRef" in var.get("valueFrom", {}):
                value = self._field(var["valueFrom"]["fieldRef"]["fieldPath"])
            else:
                raise AssertionError(f"an env source this kubelet cannot resolve: {var}")
            if value is not None:
                env[var["name"]] = value
        return env

    def container(
        self, container: Mapping[str, Any], volumes: Mapping[str, Path]
    ) -> ContainerProcess:
        mounts = {
            m["mountPath"].rstrip("/") or "/": volumes[m["name"]] / m.get("subPath", "")
            for m in container.get("volumeMounts", [])
        }

        def local(value: str) -> str:
            for mount_path in sorted(mounts, key=len, reverse=True):
                if value == mount_path or value.startswith(mount_path + "/"):
                    return str(mounts[mount_path]) + value[len(mount_path) :]
            return value

        built = image()
        env = {name: local(value) for name, value in self._env(container).items()}
        env.update(self.site.env)
        env.setdefault("SERVICE_WORKER_ID", self.pod_name)
        if "/tmp" in mounts:
            env["TMPDIR"] = str(mounts["/tmp"])

        command = container.get("command")
        if command is None:
            argv = [*built.entrypoint, *container.get("args", built.cmd)]
        else:
            argv = [*command, *container.get("args", [])]
        argv = local_argv([local(expand(arg, env)) for arg in argv])

        ports: dict[str | int, int] = {}
        for port in container.get("ports", []):
            ports[port["containerPort"]] = free_port()
            if "name" in port:
                ports[port["name"]] = ports[port["containerPort"]]
        env.update(_listen_locally(env, ports))
        workdir = container.get("workingDir", built.workdir)
        assert workdir == built.workdir, f"the image's files are under {built.workdir} only"
        return ContainerProcess(container["name"], argv, env, ROOT, ports, container)


def _listen_locally(env: Mapping[str, str], ports: dict[str | int, int]) -> dict[str, str]:
    """The listening settings moved to this pod's local ports (see the module docstring);
    a port the container listens on but does not declare gets a free one too."""
    config: dict[str, Any] = {}
    if "SERVICE_CONFIG" in env:
        config = tomllib.loads(Path(env["SERVICE_CONFIG"]).read_text())
    bind = env.get("SERVICE__HTTP__BIND", config.get("http", {}).get("bind", "127.0.0.1:8000"))
    metrics = env.get(
        "SERVICE__WORKER__METRICS_PORT", str(config.get("worker", {}).get("metrics_port", 9101))
    )
    moved = {}
    http_port = int(bind.rpartition(":")[2])
    ports.setdefault(http_port, free_port())
    moved["SERVICE__HTTP__BIND"] = f"127.0.0.1:{ports[http_port]}"
    if int(metrics):
        ports.setdefault(int(metrics), free_port())
        moved["SERVICE__WORKER__METRICS_PORT"] = str(ports[int(metrics)])
    return moved
