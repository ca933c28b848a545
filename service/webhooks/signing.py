"""Standard Webhooks signatures (https://www.standardwebhooks.com).

A delivery is a JSON body and three headers: `webhook-id` (the event's id, the same on every
attempt, so a receiver can drop a duplicate), `webhook-timestamp` (unix seconds of the attempt,
not of the event: receivers refuse timestamps more than a few minutes off, and a retry may come
hours later) and `webhook-signature`, `v1,` + base64 of HMAC-SHA256 over
`{id}.{timestamp}.{body}` keyed with the secret's bytes. The body is signed exactly as sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid

import msgspec

from service.webhooks.secrets import secret_bytes


class EventBody(msgspec.Struct, frozen=True):
    """What a receiver gets: the event, with `data` as the outbox stored it (the resource as the
    API shows it), passed through without being decoded and encoded again."""

    id: str
    type: str
    timestamp: str  # when the event happened, in the API's time format
    tenant: str
    data: msgspec.Raw


def message_id(event_id: uuid.UUID) -> str:
    return str(event_id)


def event_body(event_id: uuid.UUID, type: str, timestamp: str, tenant: str, data: str) -> bytes:
    body = EventBody(message_id(event_id), type, timestamp, tenant, msgspec.Raw(data.encode()))
    return msgspec.json.encode(body)


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, msg_id, timestamp, body),
        "content-type": "application/json",
    }
