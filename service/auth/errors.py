"""Why a request was not let in; `http/problems.py` turns these into 401 and 403."""

from __future__ import annotations


class AuthError(Exception):
    """The request carries no usable credentials (401)."""

    def __init__(
        self, detail: str, reason: str, token_present: bool = True, *, transient: bool = False
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.reason = reason  # the `reason` label of the rejection counter
        self.token_present = token_present
        # The identity provider could not be asked: says nothing about the token, so the
        # rejection must not be remembered.
        self.transient = transient


class InsufficientScope(AuthError):
    """The token is valid but lacks the scope the route requires (403)."""

    def __init__(self, scope: str) -> None:
        super().__init__(f"this operation requires the scope '{scope}'", "insufficient_scope")
        self.scope = scope
