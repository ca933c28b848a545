"""Every object the manifests render, checked offline: built-in kinds against the Kubernetes
OpenAPI schemas (kubernetes-validate, strict: unknown fields are errors) of the oldest release
the manifests support and of a current one; custom resources against our own schemas
(tests.deploy.custom_resources). A kind neither knows is an error, never skipped.

`python -m tests.deploy.validate` (`make manifests`) checks every overlay alone and with its
components; tests/deploy/test_manifests.py runs the same check."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Sequence
from typing import Any

import jsonschema
import kubernetes_validate

from tests.deploy.custom_resources import SCHEMAS
from tests.deploy.render import KubectlMissing, renderings

# 1.30: the first release whose kubelet runs a `preStop.sleep` action by default.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")


def _name(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def _custom_problems(obj: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{_name(obj)}: {error.message} at {'/'.join(map(str, error.absolute_path)) or '/'}"
        for error in validator.iter_errors(obj)
    ]


def _builtin_problems(obj: dict[str, Any], versions: Sequence[str]) -> list[str]:
    # Most objects are the same in every combination of an overlay: check each once.
    return list(_builtin_problems_of(json.dumps(obj, sort_keys=True), tuple(versions)))


@functools.cache
def _builtin_problems_of(text: str, versions: tuple[str, ...]) -> tuple[str, ...]:
    obj = json.loads(text)
    found = []
    for version in versions:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            found.append(
                f"{_name(obj)}: no schema for {obj['apiVersion']} in Kubernetes {version} "
                "nor in tests/deploy/custom_resources.py"
            )
        except kubernetes_validate.ValidationError as error:
            where = "/".join(map(str, error.absolute_path)) or "/"
            found.append(f"{_name(obj)}: Kubernetes {version}: {error.message} at {where}")
    return tuple(found)


def problems(
    objects: Sequence[dict[str, Any]], versions: Sequence[str] = KUBERNETES_VERSIONS
) -> list[str]:
    """What is wrong with `objects`; empty when every one validates."""
    found: list[str] = []
    for obj in objects:
        schema = SCHEMAS.get((obj.get("apiVersion", ""), obj.get("kind", "")))
        if schema is not None:
            found += _custom_problems(obj, schema)
        else:
            found += _builtin_problems(obj, versions)
    return found


def main() -> int:
    try:
        rendered = renderings()
    except KubectlMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failed = False
    for label, objects in rendered.items():
        custom = sum((o["apiVersion"], o["kind"]) in SCHEMAS for o in objects)
        found = problems(objects)
        failed = failed or bool(found)
        print(
            f"{label}: {len(objects) - custom} objects strict against Kubernetes "
            f"{', '.join(KUBERNETES_VERSIONS)}, {custom} custom resources against our schemas: "
            + ("ok" if not found else f"{len(found)} problem(s)")
        )
        for problem in found:
            print(f"  {problem}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
