"""Deliveries are signed as Standard Webhooks: the reference verifier accepts them, and refuses
them once the body, the id, the timestamp or the secret differ."""

from __future__ import annotations

import time
import uuid

import msgspec
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from service.webhooks.secrets import new_secret
from service.webhooks.signing import event_body, message_id, signed_headers

DATA = '{"id": "7b0c", "status": "succeeded", "result": {"version": 1}}'


def signed(secret: str) -> tuple[bytes, dict[str, str]]:
    event_id = uuid.uuid4()
    body = event_body(event_id, "job.succeeded", "2026-12-01T10:00:00.000000Z", "acme", DATA)
    return body, signed_headers(secret, message_id(event_id), int(time.time()), body)


def test_the_reference_verifier_accepts_a_signed_body() -> None:
    secret = new_secret()
    body, headers = signed(secret)
    assert Webhook(secret).verify(body, headers) == msgspec.json.decode(body)


def test_the_body_carries_the_event_and_its_data_as_stored() -> None:
    body, headers = signed(new_secret())
    event = msgspec.json.decode(body)
    assert event == {
        "id": headers["webhook-id"],
        "type": "job.succeeded",
        "timestamp": "2026-12-01T10:00:00.000000Z",
        "tenant": "acme",
        "data": {"id": "7b0c", "status": "succeeded", "result": {"version": 1}},
    }
    assert uuid.UUID(event["id"])
    assert headers["webhook-signature"].startswith("v1,")


@pytest.mark.parametrize("change", ["body", "id", "timestamp", "secret"])
def test_the_reference_verifier_refuses_anything_changed(change: str) -> None:
    secret = new_secret()
    body, headers = signed(secret)
    if change == "body":
        body = body.replace(b"succeeded", b"failed")
    elif change == "id":
        headers["webhook-id"] = str(uuid.uuid4())
    elif change == "timestamp":
        headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) - 1)
    else:
        secret = new_secret()
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, headers)
