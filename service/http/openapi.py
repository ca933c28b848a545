"""OpenAPI 3.1 generated from the route table and the msgspec wire types."""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import msgspec

from service.auth.principal import SCOPES
from service.http.operation import Operation, Param
from service.http.problems import Problem

_COMMON_ERRORS = (400, 500)
_SCOPED_ERRORS = (401, 403, 429, 503)  # 429: `limits.rate_per_second`
_BODY_ERRORS = (408, 413, 415, 422)


def build_openapi(operations: Sequence[Operation], title: str, version: str) -> dict[str, Any]:
    types: list[Any] = [Problem]
    for op in operations:
        types.extend(t for t in (op.body, op.response) if t is not None)
    refs, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}"
    )
    for schema in components.values():
        _tidy(schema)
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
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "responses": {},
    }
    if op.description:
        doc["description"] = op.description
    doc["security"] = [{"bearer": list(op.scopes)}] if op.scopes else []
    if op.scopes:
        doc["description"] = "\n\n".join(filter(None, (op.description, _scope_text(op))))
    if op.body_scopes:
        doc["x-body-scopes"] = {name: list(scopes) for name, scopes in op.body_scopes.items()}
    if op.params:
        doc["parameters"] = [_parameter(p) for p in op.params]
    if op.body is not None:
        content = {media: _schema(media, ref_of[id(op.body)]) for media in op.body_media}
        if op.example is not None:
            content["application/json"]["example"] = _example(op.example)
        doc["requestBody"] = {"required": True, "content": content}
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


def _scope_text(op: Operation) -> str:
    """The scopes in words: OpenAPI's `security` cannot say that a body field needs more."""
    text = f"Requires the {_scope_list(op.scopes)}."
    for name, scopes in op.body_scopes.items():
        text += f" A `{name}` in the body also requires the {_scope_list(scopes)}."
    return text


def _scope_list(scopes: Sequence[str]) -> str:
    noun = "scope" if len(scopes) == 1 else "scopes"
    return f"{noun} " + " and ".join(f"`{scope}`" for scope in scopes)


def _schema(media: str, ref: Any) -> dict[str, Any]:
    """The wire type's schema; CSV bodies are text (a header line, then rows)."""
    if media == "text/csv":
        return {"schema": {"type": "string", "description": "CSV with a header line"}}
    return {"schema": ref}


def _parameter(param: Param) -> dict[str, Any]:
    schema = dict(param.schema)
    if param.repeated:
        schema = {"type": "array", "items": schema}
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


def _tidy(schema: Any) -> None:
    """Give every array its `items`, every string enum its `type` (Swagger UI shows a bare
    enum as `any`), and list
    values that differ only in case once (`where_boolean` accepts `and` as well as `AND`;
    generated clients need one member per value)."""
    if isinstance(schema, list):
        for item in schema:
            _tidy(item)
        return
    if not isinstance(schema, dict):
        return
    if schema.get("type") == "array" and "items" not in schema and "prefixItems" not in schema:
        schema["items"] = {}  # `list[Any]`: spelled out, as generators require
    values = schema.get("enum")
    if isinstance(values, list) and values and all(isinstance(v, str) for v in values):
        schema.setdefault("type", "string")
        by_case: dict[str, str] = {}
        for value in values:
            by_case.setdefault(value.lower(), value)
        schema["enum"] = list(by_case.values())
    for value in schema.values():
        _tidy(value)


def _example(value: Any) -> Any:
    """A body as a client would write it: fields left at their defaults are left out."""
    if isinstance(value, msgspec.Struct):
        out = {}
        for f in msgspec.structs.fields(value):
            item = getattr(value, f.name)
            default = f.default if f.default_factory is msgspec.NODEFAULT else f.default_factory()
            if item != default:
                out[f.encode_name] = _example(item)
        return out
    if isinstance(value, list):
        return [_example(item) for item in value]
    if isinstance(value, dict):
        return {key: _example(item) for key, item in value.items()}
    if isinstance(value, msgspec.Raw):  # JSON kept undecoded: shown as what it holds
        return msgspec.json.decode(value)
    return msgspec.to_builtins(value)
