"""JSON logs that carry the request id, principal and tenant of the request being served (in
the worker: the tenant and request id of the job being run), and the trace and span ids of the
span being recorded, when tracing is on."""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from typing import Any

import msgspec

from service.domain.actors import current_actor
from service.tracing.context import current_ids

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
principal: contextvars.ContextVar[str | None] = contextvars.ContextVar("principal", default=None)

_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_encoder = msgspec.json.Encoder()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if (rid := request_id.get()) is not None:
            entry["request_id"] = rid
        if (sub := principal.get()) is not None:
            entry["sub"] = sub
        if (actor := current_actor()) is not None:
            entry["tenant"] = actor.tenant
            if "request_id" not in entry and actor.request_id:  # a job's, in the worker
                entry["request_id"] = actor.request_id
        if (ids := current_ids()) is not None:
            entry["trace_id"], entry["span_id"] = ids
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return _encoder.encode(entry).decode(errors="replace")


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = request_id.get()
        return f"{line} [{rid}]" if rid else line


def configure(level: str, fmt: str) -> None:
    """Route every logger to stderr in the chosen format (`dev` labels each process's lines)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # A library's warning (scikit-learn's, say) would otherwise be a plain-text line on stderr.
    logging.captureWarnings(True)
    # Hypercorn and arq log through their own loggers; keep them, but at our level.
    for name in ("hypercorn.error", "hypercorn.access", "arq"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
