"""Wire types of Server-Sent Event streams (`GET /events`, `GET /jobs/{id}/events`)."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from service.schemas.base import ApiStruct


class EventOut(ApiStruct):
    """The `data:` of an event on `GET /events`: the body a webhook delivery carries."""

    id: uuid.UUID
    type: str
    timestamp: str
    tenant: str
    data: dict[str, Any]


class StreamedEvent(msgspec.Struct, frozen=True):
    """One outbox event ready to send: its stream position (the SSE `id:`), its type (the SSE
    `event:`) and its `EventOut` body, already encoded."""

    position: int
    type: str
    body: str
