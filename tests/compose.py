"""docker-compose.yml as data, so tests can run what its containers would run, as subprocesses.

No Docker engine runs here: a container's command and environment are read from the file and
its volume mount points are moved under a temporary folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from tests.factories import ROOT

COMPOSE_FILE = ROOT / "docker-compose.yml"
MOUNT_ROOT = "/var/lib/models/"  # where the image's volumes are mounted (see the Dockerfile)


def compose() -> dict[str, Any]:
    """The compose file with its anchors and merge keys resolved."""
    loaded: dict[str, Any] = YAML(typ="safe", pure=True).load(COMPOSE_FILE.read_text())
    return loaded


def compose_service(name: str) -> dict[str, Any]:
    service: dict[str, Any] = compose()["services"][name]
    return service


def volume_mounts(service: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """Volume name → (mount point, read-only) of a service's short-syntax volumes."""
    mounts: dict[str, tuple[str, bool]] = {}
    for entry in service.get("volumes", []):
        name, target, *mode = str(entry).split(":")
        mounts[name] = (target, mode == ["ro"])
    return mounts


def under(tmp: Path, value: str) -> str:
    """`value` with a container mount point moved under `tmp`; other values unchanged."""
    if value.startswith(MOUNT_ROOT):
        return str(tmp / value.removeprefix("/"))
    return value
