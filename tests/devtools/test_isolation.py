"""The api and the worker cannot import development tooling, not even by accident."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.factories import ROOT

LOADED_MODULES = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted(m for m in sys.modules if m.startswith("service."))))
"""


def _loaded_by(imports: list[str]) -> list[str]:
    """The `service.` modules loaded in a fresh interpreter once `imports` are imported."""
    done = subprocess.run(
        [sys.executable, "-c", LOADED_MODULES, *imports],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded: list[str] = json.loads(done.stdout)
    return loaded


def _production_modules() -> list[str]:
    package = ROOT / "service"
    names = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if "devtools" not in parts:
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_entry_points_of_api_and_worker_load_no_devtools() -> None:
    loaded = _loaded_by(
        ["service.__main__", "service.http.app", "service.worker.app", "service.worker.tasks"]
    )
    assert "service.worker.tasks" in loaded  # the probe sees what it imported
    assert [m for m in loaded if m.startswith("service.devtools")] == []


def test_no_production_module_imports_devtools() -> None:
    modules = _production_modules()
    assert "service.repositories.migrator" in modules
    loaded = _loaded_by(modules)
    assert [m for m in loaded if m.startswith("service.devtools")] == []
