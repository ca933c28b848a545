"""Wire types of Server-Sent Event streams (`GET /events`, `GET /jobs/{id}/events`)."""

from __future__ import annotations

import msgspec


class StreamedEvent(msgspec.Struct, frozen=True):
    """One outbox event ready to send: its stream position (the SSE `id:`), its type (the SSE
    `event:`) and its body (`{"id", "type", "timestamp", "tenant", "data"}`, as a webhook
    delivery carries it), already encoded."""

    position: int
    type: str
    body: str
