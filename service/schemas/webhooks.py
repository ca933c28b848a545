"""Wire types of webhooks: registration, the webhook as listed, and its delivery attempts."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal, get_args

import msgspec

from service.schemas.base import ApiStruct, Page, ShortText

EventType = Literal[
    "job.succeeded",
    "job.failed",
    "job.cancelled",
    "version.created",
    "alias.moved",
    "dataset.created",
    "dataset.deleted",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)

Url = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=2048,
        description="An absolute http(s) URL without credentials or fragment, on a public "
        "address unless `webhooks.allow_private` is set.",
        examples=["https://hooks.example.com/models-service"],
    ),
]


class WebhookCreate(ApiStruct):
    url: Url
    events: Annotated[
        list[EventType],
        msgspec.Meta(
            min_length=1,
            max_length=len(EVENT_TYPES),
            description="The event types to deliver (each at most once).",
        ),
    ]
    description: ShortText | None = None


class WebhookOut(ApiStruct, kw_only=True):
    id: uuid.UUID
    url: str
    events: list[str]
    description: str | None
    created_by: str
    created_at: datetime
    tenant: str


class WebhookCreated(WebhookOut, kw_only=True):
    """The new webhook, with its signing secret: this answer is the only one that shows it."""

    secret: Annotated[
        str,
        msgspec.Meta(
            description="The Standard Webhooks signing secret (`whsec_` + base64). Store it "
            "now: it is kept encrypted and never shown again.",
        ),
    ]


DeliveryStatus = Literal["pending", "delivered", "failed"]


class DeliveryAttempt(ApiStruct):
    """One attempt to deliver one event to the webhook."""

    event_id: uuid.UUID
    type: str
    attempt: int
    at: datetime
    status_code: Annotated[
        int | None, msgspec.Meta(description="The receiver's HTTP status; null: no answer")
    ]
    error: Annotated[
        str | None, msgspec.Meta(description="Why no answer came (timeout, refused, ...)")
    ]
    duration_ms: float | None
    next_attempt_at: Annotated[
        datetime | None,
        msgspec.Meta(description="When the event is tried again; null: no retry follows"),
    ]
    status: Annotated[
        DeliveryStatus,
        msgspec.Meta(description="Where the delivery of this event stands now"),
    ]


class WebhookPage(Page[WebhookOut]):
    """The tenant's webhooks, oldest first."""


class DeliveryPage(Page[DeliveryAttempt]):
    """A webhook's delivery attempts, newest first."""
