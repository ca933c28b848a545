"""What the container image says about a container, read from the Dockerfile's last stage:
ENTRYPOINT, CMD, WORKDIR and ENV. The local kubelet (`tests/deploy/kubelet.py`) runs a container
as the image would, so it reads them here instead of repeating them."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from tests.factories import ROOT


@dataclass(frozen=True)
class Image:
    entrypoint: list[str]
    cmd: list[str]
    workdir: str
    env: dict[str, str] = field(default_factory=dict)


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each instruction, continuation lines joined."""
    found: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        whole = pending + stripped
        pending = ""
        keyword, _, rest = whole.partition(" ")
        found.append((keyword.upper(), rest.strip()))
    return found


def _exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list), f"only the exec (JSON) form is read here: {arguments}"
    return [str(part) for part in value]


@cache
def image(dockerfile: Path = ROOT / "Dockerfile") -> Image:
    """The final stage's settings; ENV values may refer to earlier ones (`${PATH}`), which are
    left as written: the kubelet replaces the image's PATH by the local venv's."""
    instructions = _instructions(dockerfile.read_text())
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    entrypoint: list[str] = []
    cmd: list[str] = []
    workdir = "/"
    env: dict[str, str] = {}
    for keyword, arguments in instructions[last_from + 1 :]:
        if keyword == "ENTRYPOINT":
            entrypoint = _exec_form(arguments)
        elif keyword == "CMD":
            cmd = _exec_form(arguments)
        elif keyword == "WORKDIR":
            workdir = arguments
        elif keyword == "ENV":
            for pair in shlex.split(arguments):
                name, sep, value = pair.partition("=")
                assert sep, f"ENV {arguments}: only the NAME=value form is read here"
                env[name] = value
    return Image(entrypoint, cmd, workdir, env)
