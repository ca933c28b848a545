"""A configured process writes one JSON object per line, whatever produced the line."""

from __future__ import annotations

import logging
import subprocess
import sys

import msgspec

from service.domain.actors import Actor, acting_as
from service.logs import JsonFormatter
from service.tracing.context import continued
from tests.factories import ROOT
from tests.process_logs import json_lines
from tests.spans import CALLER_SPAN, CALLER_TRACE, CALLER_TRACEPARENT

CONFIGURED = """
import logging, warnings
from service import logs
logs.configure("INFO", "json")
logging.getLogger("hypercorn.error").info("from a library's logger")
warnings.warn("from a library's warning", UserWarning)
"""


def test_library_logs_and_warnings_become_json_lines() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CONFIGURED],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    entries = json_lines(done.stderr)
    assert [entry["logger"] for entry in entries] == ["hypercorn.error", "py.warnings"]
    assert "from a library's warning" in entries[1]["msg"]


def test_a_line_logged_while_acting_for_a_tenant_names_the_tenant_and_request() -> None:
    record = logging.makeLogRecord({"msg": "fitting", "levelno": logging.INFO})
    with acting_as(Actor("acme", "alice", "req-7")):
        inside = msgspec.json.decode(JsonFormatter().format(record))
    outside = msgspec.json.decode(JsonFormatter().format(record))
    assert (inside["tenant"], inside["request_id"]) == ("acme", "req-7")
    assert "tenant" not in outside and "request_id" not in outside


def test_a_line_logged_in_a_sampled_trace_names_its_trace_and_span() -> None:
    record = logging.makeLogRecord({"msg": "fitting", "levelno": logging.INFO})
    with continued({"traceparent": CALLER_TRACEPARENT}):
        sampled = msgspec.json.decode(JsonFormatter().format(record))
    with continued({"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-00"}):
        unsampled = msgspec.json.decode(JsonFormatter().format(record))
    outside = msgspec.json.decode(JsonFormatter().format(record))
    assert (sampled["trace_id"], sampled["span_id"]) == (CALLER_TRACE, CALLER_SPAN)
    assert "trace_id" not in unsampled and "span_id" not in unsampled
    assert "trace_id" not in outside and "span_id" not in outside
