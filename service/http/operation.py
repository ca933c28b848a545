"""What an operation declares: method, path, scopes, parameters, body and response types.

One declaration drives routing, authorization, body decoding and the OpenAPI document, so the
four cannot disagree. Endpoint modules build their `OPERATIONS` from these.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_type_hints

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from service.auth.principal import SCOPES
from service.http.bodies import CsvBody
from service.settings import HttpSettings

Endpoint = Callable[..., Awaitable[Response]]
"""`endpoint(request)`, or `endpoint(request, body)` when the operation declares a `body`."""
BodyReader = Callable[[Request, HttpSettings], Awaitable[Any]]
"""Reads a body the usual JSON decoding cannot (a protocol's binary framing): the endpoint
gets what it returns, and the document shows `body` as its JSON part."""

_OPERATION_ID = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True, kw_only=True)
class Param:
    """A path, query or header parameter, as the OpenAPI document shows it."""

    name: str
    where: Literal["path", "query", "header"]
    schema: Mapping[str, Any]
    description: str = ""
    required: bool = False
    repeated: bool = False


@dataclass(frozen=True, kw_only=True)
class Operation:
    operation_id: str  # names the method of a generated client: snake_case, unique
    method: str
    path: str
    endpoint: Endpoint
    scope: str | None  # the scope the route table lists; None: no token needed
    summary: str
    tag: str
    body: Any = None  # msgspec type of the JSON body, decoded before the endpoint runs
    example: Any = None  # an instance of `body` that works as sent (Swagger UI pre-fills it)
    response: Any = None  # msgspec type of the success body
    status: int = 200
    params: Sequence[Param] = ()
    body_media: Sequence[str] = ("application/json",)
    response_media: Sequence[str] = ("application/json",)
    errors: Sequence[int] = ()
    description: str = ""
    extra_responses: Mapping[int, str] = field(default_factory=dict)
    # Scopes every call needs besides `scope`, e.g. an operation that reads and writes datasets.
    also_requires: Sequence[str] = ()
    # Scopes a call needs when it gives this body field: what the field reaches (a `dataset`
    # source reads a dataset) must be allowed too, whichever route reaches it.
    body_scopes: Mapping[str, Sequence[str]] = field(default_factory=dict)
    reader: BodyReader | None = None

    def __post_init__(self) -> None:
        if not _OPERATION_ID.match(self.operation_id):
            raise ValueError(f"operation_id {self.operation_id!r} is not snake_case")
        in_path = set(re.findall(r"\{(\w+)\}", self.path))
        declared = {p.name for p in self.params if p.where == "path"}
        if in_path != declared:
            raise ValueError(f"{self.method} {self.path} declares path parameters {declared}")
        _check_endpoint(self)
        _check_scopes(self)

    @property
    def accepts_csv(self) -> bool:
        return "text/csv" in self.body_media

    @property
    def scopes(self) -> tuple[str, ...]:
        """Every scope each call needs, whatever its body."""
        return () if self.scope is None else (self.scope, *self.also_requires)

    def body_scopes_of(self, body: Any) -> tuple[str, ...]:
        """The further scopes this decoded body needs, in declaration order."""
        needed: list[str] = []
        for name, scopes in self.body_scopes.items():
            if getattr(body, name) not in (None, msgspec.UNSET):
                needed.extend(s for s in scopes if s not in needed and s not in self.scopes)
        return tuple(needed)


def _check_scopes(op: Operation) -> None:
    """Scopes name ones a token can carry, and body scopes name fields the body has."""
    name = f"{op.method} {op.path}"
    if op.scope is None and (op.also_requires or op.body_scopes):
        raise ValueError(f"{name} is public, so it cannot require further scopes")
    declared = [*op.scopes, *(s for scopes in op.body_scopes.values() for s in scopes)]
    unknown = sorted(set(declared) - set(SCOPES))
    if unknown:
        raise ValueError(f"{name} declares unknown scopes {unknown}")
    if not op.body_scopes:
        return
    if op.body is None or op.accepts_csv:
        raise ValueError(f"{name} declares body scopes, so it takes a JSON body only")
    fields = {f.name for f in msgspec.structs.fields(op.body)}
    strays = sorted(set(op.body_scopes) - fields)
    if strays:
        raise ValueError(f"{name}: body scopes name {strays}, not fields of {op.body.__name__}")


def _check_endpoint(op: Operation) -> None:
    """The endpoint takes the declared body, so the document cannot promise another one."""
    params = list(inspect.signature(op.endpoint).parameters)
    name = f"{op.method} {op.path}: {op.endpoint.__qualname__}"
    if op.body is None:
        if len(params) != 1:
            raise TypeError(f"{name} declares no body, so it takes (request) only")
        return
    if len(params) != 2:
        raise TypeError(f"{name} declares a body, so it takes (request, body)")
    if op.reader is not None:
        return  # the endpoint takes what the reader returns
    hints = get_type_hints(op.endpoint)
    expected = op.body | CsvBody if op.accepts_csv else op.body
    if hints.get(params[1]) != expected:
        raise TypeError(f"{name} takes {hints.get(params[1])}, the operation declares {expected}")
    if op.example is not None and not isinstance(op.example, op.body):
        raise TypeError(f"{name}: the example is not a {op.body.__name__}")
