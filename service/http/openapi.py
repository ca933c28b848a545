"""OpenAPI 3.1 generated from the route table and the msgspec wire types."""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import msgspec

from service.auth.principal import SCOPES
from service.http.problems import Problem
from service.http.routes import Operation

_COMMON_ERRORS = (400, 500)
_SCOPED_ERRORS = (401, 403, 503)
_BODY_ERRORS = (413, 415, 422)


def build_openapi(operations: Sequence[Operation], title: str, version: str) -> dict[str, Any]:
    types: list[Any] = [Problem]
    for op in operations:
        types.extend(t for t in (op.body, op.response) if t is not None)
    refs, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}"
    )
    ref_of = dict(zip(map(id, types), refs, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, ref_of)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Manage, train and serve scikit-learn models. Errors are RFC 9457 "
            "`application/problem+json` documents.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "An OAuth2 access token. Scopes: "
                    + ", ".join(SCOPES)
                    + "; `admin` implies all.",
                }
            },
        },
    }


def _operation(op: Operation, ref_of: dict[int, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "operationId": _operation_id(op),
        "summary": op.summary,
        "tags": [op.tag],
        "responses": {},
    }
    if op.description:
        doc["description"] = op.description
    if op.scope is not None:
        doc["security"] = [{"bearer": [op.scope]}]
        doc["description"] = (op.description + "\n\n" if op.description else "") + (
            f"Requires the scope `{op.scope}`."
        )
    else:
        doc["security"] = []
    if op.params:
        doc["parameters"] = [_parameter(p) for p in op.params]
    if op.body is not None:
        doc["requestBody"] = {
            "required": True,
            "content": {media: _schema(media, ref_of[id(op.body)]) for media in op.body_media},
        }
    success: dict[str, Any] = {"description": HTTPStatus(op.status).phrase}
    if op.response is not None:
        success["content"] = {
            media: _schema(media, ref_of[id(op.response)]) for media in op.response_media
        }
    doc["responses"][str(op.status)] = success
    for status, text in op.extra_responses.items():
        doc["responses"][str(status)] = {"description": text}
    errors = set(_COMMON_ERRORS) | set(op.errors)
    if op.scope is not None:
        errors |= set(_SCOPED_ERRORS)
    if op.body is not None:
        errors |= set(_BODY_ERRORS)
    problem = {"application/problem+json": {"schema": ref_of[id(Problem)]}}
    for status in sorted(errors):
        doc["responses"][str(status)] = {
            "description": HTTPStatus(status).phrase,
            "content": problem,
        }
    return doc


def _schema(media: str, ref: Any) -> dict[str, Any]:
    """The wire type's schema; CSV bodies are text (a header line, then rows)."""
    if media == "text/csv":
        return {"schema": {"type": "string", "description": "CSV with a header line"}}
    return {"schema": ref}


def _parameter(param: Any) -> dict[str, Any]:
    schema = {"type": "array", "items": param.schema} if param.repeated else param.schema
    out: dict[str, Any] = {
        "name": param.name,
        "in": param.where,
        "required": param.required or param.where == "path",
        "schema": schema,
    }
    if param.repeated:
        out["style"] = "form"
        out["explode"] = True
    if param.description:
        out["description"] = param.description
    return out


def _operation_id(op: Operation) -> str:
    parts = [p.strip("{}").replace("-", "_") for p in op.path.strip("/").split("/") if p]
    return "_".join([op.method.lower(), *parts]) or op.method.lower()
