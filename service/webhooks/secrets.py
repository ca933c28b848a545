"""Webhook signing secrets: made once, shown once, stored encrypted.

A secret is `whsec_` + base64 of 24 random bytes (the Standard Webhooks form). The database holds
it only as AES-256-GCM ciphertext (a 12-byte nonce, then ciphertext and tag) under a key that
comes from the environment: `webhooks.secret_key`, or, when that is empty, a key derived from
`artifacts.hmac_key` with HKDF-SHA256. A dump of the database alone therefore cannot sign a
delivery. The webhook's tenant and id are the associated data, so a ciphertext copied onto
another webhook's row does not decrypt.
"""

from __future__ import annotations

import base64
import os
import uuid
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from service.settings import Settings

PREFIX = "whsec_"
_NONCE = 12


class SecretUnreadable(Exception):
    """A stored secret does not decrypt under the configured key (wrong key, or tampered)."""


def new_secret() -> str:
    return PREFIX + base64.b64encode(os.urandom(24)).decode()


def secret_bytes(secret: str) -> bytes:
    """The HMAC key a `whsec_` secret stands for (Standard Webhooks: base64 after the prefix)."""
    return base64.b64decode(secret.removeprefix(PREFIX))


@dataclass(frozen=True)
class SecretBox:
    key: bytes
    key_id: str

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        configured = settings.webhooks.secret_key
        if configured:
            return cls(_stretch(configured.encode(), b"webhooks.secret_key"), "webhooks")
        hmac_key = settings.artifacts.hmac_key
        if not hmac_key:
            raise ValueError(
                "set SERVICE__WEBHOOKS__SECRET_KEY (or SERVICE__ARTIFACTS__HMAC_KEY) to store"
                " webhook secrets"
            )
        key_id = f"artifacts:{settings.artifacts.key_id}"
        return cls(_stretch(hmac_key.encode(), b"webhook secrets"), key_id)

    def seal(self, tenant: str, webhook_id: uuid.UUID, secret: str) -> bytes:
        nonce = os.urandom(_NONCE)
        sealed = AESGCM(self.key).encrypt(nonce, secret.encode(), _aad(tenant, webhook_id))
        return nonce + sealed

    def open(self, tenant: str, webhook_id: uuid.UUID, stored: bytes, key_id: str) -> str:
        if key_id != self.key_id:
            raise SecretUnreadable(f"sealed under key '{key_id}', configured '{self.key_id}'")
        try:
            plain = AESGCM(self.key).decrypt(
                stored[:_NONCE], stored[_NONCE:], _aad(tenant, webhook_id)
            )
        except Exception as exc:  # InvalidTag, or a truncated value
            raise SecretUnreadable("the stored secret does not decrypt") from exc
        return plain.decode()


def _stretch(material: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(material)


def _aad(tenant: str, webhook_id: uuid.UUID) -> bytes:
    return f"{tenant}/{webhook_id}".encode()
