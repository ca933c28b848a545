"""Request logs: one JSON line per request, carrying its request id."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import msgspec
import pytest

from service.logs import JsonFormatter
from service.settings import Settings
from tests.factories import ClientFactory

pytestmark = pytest.mark.anyio


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Collects what the access and error loggers write, formatted as in production."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    loggers = [logging.getLogger(name) for name in ("service.access", "service.http.problems")]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    yield stream
    for logger in loggers:
        logger.removeHandler(handler)


async def test_request_logs_are_json_with_the_request_id(
    client_factory: ClientFactory, settings: Settings, json_lines: io.StringIO
) -> None:
    logged = msgspec.structs.replace(
        settings, http=msgspec.structs.replace(settings.http, access_log=True)
    )
    client = await client_factory(logged)
    await client.get("/models/missing", headers={"X-Request-ID": "req-42"})
    entries = [msgspec.json.decode(line) for line in json_lines.getvalue().splitlines()]
    access = next(e for e in entries if e["logger"] == "service.access")
    assert access["request_id"] == "req-42"
    assert access["status"] == 404 and access["path"] == "/models/missing"
    assert access["sub"] == "anonymous"
    assert access["ts"].endswith("Z")
