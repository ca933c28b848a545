"""Verified tokens remembered until they expire, so a client reusing its token pays once; and
rejected ones remembered for a few seconds, so a client repeating a bad one is not one
identity-provider call per request.

Keys are SHA-256 digests, not the tokens: the caches then hold nothing that could be replayed if
the process memory leaked, and every key has the same small size.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable

from service.auth.errors import AuthError
from service.auth.principal import Principal

Clock = Callable[[], float]


class TokenCache:
    """A bounded LRU of token digest → Principal, honouring each Principal's `expires_at`."""

    def __init__(self, max_size: int, clock: Clock = time.time) -> None:
        self.max_size = max_size
        self._clock = clock
        self._entries: OrderedDict[bytes, Principal] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def key(token: str) -> bytes:
        """SHA-256 of the token's (ASCII) bytes."""
        return hashlib.sha256(token.encode()).digest()

    def get(self, key: bytes) -> Principal | None:
        principal = self._entries.get(key)
        if principal is None:
            return None
        if principal.expires_at is None or principal.expires_at <= self._clock():
            # Expired: the caller verifies again, which rejects the token once its `exp` (plus
            # the configured leeway) has passed. The cache never extends a token's life.
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return principal

    def put(self, key: bytes, principal: Principal) -> None:
        if principal.expires_at is None or principal.expires_at <= self._clock():
            return  # nothing bounds its life, or it is already past: never cache it
        self._entries[key] = principal
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_size:
            self._entries.popitem(last=False)


class RejectionCache:
    """A bounded LRU of token digest → why it was refused, each entry kept `ttl` seconds.

    Kept apart from `TokenCache` so that a flood of garbage tokens evicts only other garbage,
    never the verified tokens of well-behaved clients. The TTL stays short because a refusal
    may stop being true (a token the authorization server has not finished issuing yet).
    """

    def __init__(self, max_size: int, ttl: float, clock: Clock = time.time) -> None:
        self.max_size = max_size
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[bytes, tuple[float, str, str]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> AuthError | None:
        """A new `AuthError` like the remembered one (an exception raised twice would carry the
        first raise's traceback along), or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, detail, reason = entry
        if expires_at <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return AuthError(detail, reason)

    def put(self, key: bytes, error: AuthError) -> None:
        if error.transient or self.ttl <= 0:
            return
        self._entries[key] = (self._clock() + self.ttl, error.detail, error.reason)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_size:
            self._entries.popitem(last=False)
