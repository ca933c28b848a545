"""The Kubernetes manifests as data: what `kubectl kustomize` makes of an overlay of
deploy/kubernetes, alone or with some of its components.

kubectl is required, never optional: without it these helpers raise, so a test that needs a
rendering fails (loudly) instead of passing on nothing."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from tests.factories import ROOT

KUSTOMIZE_ROOT = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("dev", "production")
KUBECTL_FALLBACK = Path("/usr/bin/kubectl")


class KubectlMissing(RuntimeError):
    """No kubectl on PATH nor at /usr/bin/kubectl: the manifests cannot be checked."""


def kubectl() -> str:
    found = shutil.which("kubectl") or (
        str(KUBECTL_FALLBACK) if os.access(KUBECTL_FALLBACK, os.X_OK) else None
    )
    if found is None:
        raise KubectlMissing(
            "kubectl is required to render deploy/kubernetes (`kubectl kustomize`); "
            "install it or put it on PATH"
        )
    return found


def component_names() -> list[str]:
    """Every optional component under deploy/kubernetes/components."""
    folder = KUSTOMIZE_ROOT / "components"
    return sorted(p.parent.name for p in folder.glob("*/kustomization.yaml"))


def _folder(name_or_path: str, kind: str) -> Path:
    """`dev` → deploy/kubernetes/overlays/dev; a path (relative to the repository) as is."""
    path = Path(name_or_path)
    if len(path.parts) == 1:
        path = KUSTOMIZE_ROOT / kind / name_or_path
    elif not path.is_absolute():
        path = ROOT / path
    if not (path / "kustomization.yaml").is_file():
        raise FileNotFoundError(f"no kustomization.yaml in {path}")
    return path.resolve()


def render(overlay: str, components: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Every object `kubectl kustomize` renders for `overlay` (a name under overlays/, or a
    path), with `components` (names under components/, or paths) added. A fresh copy each
    call: callers may change what they get."""
    text = _rendered(str(_folder(overlay, "overlays")), tuple(components))
    documents = YAML(typ="safe", pure=True).load_all(text)
    return [doc for doc in documents if doc is not None]


@functools.cache
def _rendered(overlay: str, components: tuple[str, ...]) -> str:
    if not components:
        return _kustomize(Path(overlay))
    # Components are added by a kustomization of our own that names the overlay as its
    # resource. kustomize refuses absolute paths there, hence the relative ones.
    with tempfile.TemporaryDirectory(prefix="kustomize-") as tmp:
        here = Path(tmp).resolve()
        folders = [_folder(name, "components") for name in components]
        lines = [
            "apiVersion: kustomize.config.k8s.io/v1beta1",
            "kind: Kustomization",
            "resources:",
            f"  - {os.path.relpath(overlay, here)}",
            "components:",
            *(f"  - {os.path.relpath(folder, here)}" for folder in folders),
        ]
        (here / "kustomization.yaml").write_text("\n".join(lines) + "\n")
        return _kustomize(here)


def _kustomize(folder: Path) -> str:
    done = subprocess.run(
        [kubectl(), "kustomize", str(folder)], capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {folder} failed:\n{done.stderr}")
    return done.stdout


def combinations() -> list[tuple[str, tuple[str, ...]]]:
    """Every way the manifests are meant to be applied: each overlay alone, with each
    component, and with all of them."""
    combos: list[tuple[str, ...]] = [()]
    names = component_names()
    combos += [(name,) for name in names]
    if len(names) > 1:
        combos.append(tuple(names))
    return [(overlay, combo) for overlay in OVERLAYS for combo in combos]


def label(overlay: str, components: Sequence[str]) -> str:
    """`production+monitoring`: an overlay and the components added to it."""
    return "+".join((overlay, *components))


def renderings() -> dict[str, list[dict[str, Any]]]:
    """The objects of every combination, by its label."""
    return {label(o, c): render(o, c) for o, c in combinations()}


def find(objects: Sequence[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The one object of `kind` named `name`; a generated ConfigMap or Secret matches by its
    name before kustomize's hash suffix."""
    found = [
        obj
        for obj in objects
        if obj["kind"] == kind
        and (
            obj["metadata"]["name"] == name
            or (
                kind in ("ConfigMap", "Secret")
                and obj["metadata"]["name"].rsplit("-", 1)[0] == name
            )
        )
    ]
    assert len(found) == 1, f"{len(found)} {kind} named {name}"
    return found[0]


def of_kind(objects: Sequence[dict[str, Any]], *kinds: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] in kinds]
