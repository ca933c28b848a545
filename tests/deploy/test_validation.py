"""deploy/kubernetes renders, and everything it renders is valid: every overlay alone and with
each component, every built-in object strictly against the Kubernetes schemas (unknown fields
are errors), custom resources against our own; an unknown kind or a misspelt field fails the
check; the settings file in the ConfigMap is the repository's config.toml."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.deploy import validate
from tests.deploy.render import (
    KUSTOMIZE_ROOT,
    combinations,
    component_names,
    find,
    label,
    render,
)
from tests.deploy.validate import problems
from tests.factories import ROOT

COMBINATIONS = combinations()


@pytest.mark.parametrize(
    ("overlay", "components"), COMBINATIONS, ids=[label(*c) for c in COMBINATIONS]
)
def test_every_rendered_object_validates(overlay: str, components: tuple[str, ...]) -> None:
    objects = render(overlay, components)
    assert objects
    assert problems(objects) == []


def test_every_overlay_is_checked_with_the_monitoring_component() -> None:
    assert "monitoring" in component_names()
    assert ("production", ("monitoring",)) in COMBINATIONS
    assert ("dev", ("monitoring",)) in COMBINATIONS
    kinds = {obj["kind"] for obj in render("production", ["monitoring"])}
    assert "ServiceMonitor" in kinds


def test_an_unknown_field_fails_the_check() -> None:
    objects = render("production")
    api = copy.deepcopy(find(objects, "Deployment", "models-api"))
    api["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    found = problems([api])
    assert len(found) == 2, found  # once per Kubernetes version
    assert all("livenessProbes" in problem for problem in found)


def test_a_wrong_type_fails_the_check() -> None:
    budget = copy.deepcopy(find(render("dev"), "PodDisruptionBudget", "models-api"))
    budget["spec"]["selector"] = "models-api"
    assert problems([budget])


def test_a_kind_no_schema_knows_fails_the_check() -> None:
    unknown = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "models-widget"},
        "spec": {},
    }
    found = problems([unknown])
    assert found and all("no schema" in problem for problem in found), found


def test_custom_resources_are_checked_strictly() -> None:
    monitor = copy.deepcopy(find(render("dev", ["monitoring"]), "ServiceMonitor", "models-api"))
    assert problems([monitor]) == []
    monitor["spec"]["endpoints"][0]["intervall"] = "30s"
    assert any("intervall" in problem for problem in problems([monitor]))
    rule: dict[str, Any] = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "models-alerts"},
        "spec": {"groups": [{"name": "models", "rules": [{"alert": "Down", "expr": "up == 0"}]}]},
    }
    assert problems([rule]) == []
    rule["spec"]["groups"][0]["rules"][0]["for"] = "5 minutes"
    assert problems([rule])


def test_the_configmap_holds_the_repository_settings_file() -> None:
    """kustomize reads files inside the kustomization's folder only: base/ keeps a copy."""
    copied = KUSTOMIZE_ROOT / "base" / "config.toml"
    assert copied.read_bytes() == (ROOT / "config.toml").read_bytes(), (
        "cp config.toml deploy/kubernetes/base/config.toml"
    )
    for overlay in ("dev", "production"):
        data = find(render(overlay), "ConfigMap", "models-config")["data"]
        assert data["config.toml"] == (ROOT / "config.toml").read_text()


def test_make_manifests_checks_every_combination(capsys: pytest.CaptureFixture[str]) -> None:
    assert validate.main() == 0
    out = capsys.readouterr().out
    checked = [line.split(":")[0] for line in out.splitlines() if line.endswith(": ok")]
    assert checked == [label(*c) for c in COMBINATIONS]
    check = next(
        line for line in (ROOT / "Makefile").read_text().splitlines() if line.startswith("check:")
    )
    assert "manifests" in check.split("##")[0].split(), check
