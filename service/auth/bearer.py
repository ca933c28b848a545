"""The `Authorization: Bearer <token>` header (RFC 6750 §2.1), and nothing else.

Tokens in query strings or form bodies (RFC 6750 §2.2–2.3) are deliberately not accepted: they end
up in access logs and browser histories.
"""

from __future__ import annotations

import re

from starlette.requests import HTTPConnection

from service.auth.errors import AuthError

# RFC 6750 `b64token`. Anything else cannot be a token we issued, so it is refused before any
# hashing or parsing; the length cap bounds the work an anonymous caller can ask of us.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
MAX_TOKEN_LENGTH = 16 * 1024


def bearer_token(conn: HTTPConnection) -> str:
    """The request's bearer token, or `AuthError` (reason `missing` or `malformed`)."""
    header = conn.headers.get("authorization")
    if header is None:
        raise AuthError("this operation needs a bearer token", "missing", token_present=False)
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        # Another scheme (Basic, …) carries no bearer credentials: answer with the plain
        # `Bearer` challenge, as for a missing header (RFC 6750 §3.1).
        raise AuthError(
            "the Authorization header must use the Bearer scheme", "malformed", token_present=False
        )
    token = token.strip()
    if len(token) > MAX_TOKEN_LENGTH or not _B64TOKEN.fullmatch(token):
        raise AuthError("the bearer token is malformed", "malformed")
    return token
