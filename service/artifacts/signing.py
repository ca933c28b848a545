"""Artifacts are joblib (pickle) bytes, so they are loaded only after their HMAC tag checks out.

Only workers write artifacts, and nothing a client sends is ever unpickled. The tag is
HMAC-SHA256 with a key that lives outside the database, so someone who can write to the
`artifacts` table still cannot get code executed by the api or a worker.

The tag binds the bytes to their place (tenant, model id, version): valid bytes and tag of
another model or version, copied onto a row, do not verify there. It is taken over the bytes'
SHA-256 rather than the bytes, so sealing and checking hash a large artifact once; SHA-256's
collision resistance makes that as binding as the bytes themselves. Each tag names the key that
made it, so keys can rotate; tags from before key ids (`key_id` None) are the v1 scheme, HMAC
over the bytes alone, still accepted under any configured key.
"""

from __future__ import annotations

import hashlib
import hmac
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import joblib
import msgspec

# v2 tags are made with a key derived from the secret under this label, never with the secret
# itself: a v2 tag is then no v1 tag (an HMAC over stored bytes with the secret) of anything, so
# a row relabelled as v1 cannot pass with a v2 tag and bytes crafted to match it.
_V2_LABEL = b"models-service artifact v2"


class TamperedArtifact(Exception):
    """The stored bytes do not match their tag; they are never unpickled."""


@dataclass(frozen=True)
class Place:
    """Where an artifact belongs; a v2 tag is valid only here."""

    tenant: str
    model_id: int
    version: int


@dataclass(frozen=True)
class Seal:
    """What is stored beside artifact bytes so that they can be verified later."""

    sha256: str
    hmac: str
    key_id: str | None  # None: the v1 scheme, from before key ids


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def v2_message(place: Place, digest: str) -> bytes:
    # msgpack frames each field with its length, so no two places share a message.
    return msgspec.msgpack.encode([place.tenant, place.model_id, place.version, digest])


def v2_tag(secret: bytes, place: Place, digest: str) -> str:
    v2_key = hmac.new(secret, _V2_LABEL, hashlib.sha256).digest()
    return hmac.new(v2_key, v2_message(place, digest), hashlib.sha256).hexdigest()


def v1_tag(secret: bytes, data: bytes) -> str:
    return hmac.new(secret, data, hashlib.sha256).hexdigest()


def seal(digest: str, place: Place, key_id: str, secret: bytes) -> Seal:
    """The seal of bytes whose `sha256` is `digest`, taken first (outside any transaction)."""
    return Seal(digest, v2_tag(secret, place, digest), key_id)


def verify(data: bytes, place: Place, stored: Seal, secrets: Mapping[str, bytes]) -> None:
    """TamperedArtifact unless `stored` was made for exactly these bytes at `place` by one of
    `secrets` (key id to secret)."""
    digest = sha256(data)
    if not hmac.compare_digest(digest, stored.sha256):
        raise TamperedArtifact("artifact bytes do not match their sha256")
    if stored.key_id is None:
        if not any(hmac.compare_digest(v1_tag(s, data), stored.hmac) for s in secrets.values()):
            raise TamperedArtifact("artifact bytes do not match their (v1) signature")
        return
    secret = secrets.get(stored.key_id)
    if secret is None:
        raise TamperedArtifact(f"artifact signed with key '{stored.key_id}', not configured")
    if not hmac.compare_digest(v2_tag(secret, place, digest), stored.hmac):
        raise TamperedArtifact("artifact bytes do not match their signature for this version")


def dumps(obj: Any) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(obj, buffer)
    return buffer.getvalue()
