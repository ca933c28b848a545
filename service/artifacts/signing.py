"""Artifacts are joblib (pickle) bytes, so they are loaded only after their HMAC tag checks out.

Only workers write artifacts, and nothing a client sends is ever unpickled. The tag is
HMAC-SHA256 over the bytes with a key that lives outside the database, so someone who can write
to the `artifacts` table still cannot get code executed by the api or a worker.
"""

from __future__ import annotations

import hashlib
import hmac
import io
from typing import Any

import joblib


class TamperedArtifact(Exception):
    """The stored bytes do not match their tag; they are never unpickled."""


class MissingKey(Exception):
    """No HMAC key is configured, so artifacts can be neither written nor loaded."""


def _key(key: str) -> bytes:
    if not key:
        raise MissingKey("set SERVICE__ARTIFACTS__HMAC_KEY to sign and verify model artifacts")
    return key.encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sign(data: bytes, key: str) -> str:
    return hmac.new(_key(key), data, hashlib.sha256).hexdigest()


def verify(data: bytes, tag: str, expected_sha256: str, key: str) -> None:
    if not hmac.compare_digest(sign(data, key), tag) or sha256(data) != expected_sha256:
        raise TamperedArtifact("artifact bytes do not match their signature")


def dumps(obj: Any) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(obj, buffer)
    return buffer.getvalue()


def load_verified(data: bytes, tag: str, expected_sha256: str, key: str) -> Any:
    verify(data, tag, expected_sha256, key)
    return joblib.load(io.BytesIO(data))
