"""Why a request was not let in; `http/problems.py` turns these into 401 and 403."""

from __future__ import annotations

from collections.abc import Sequence


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
    """The token is valid but lacks scopes the request requires (403): `missing` are the ones
    it lacks, `scope` every one the request needs (RFC 6750's space-delimited `scope`)."""

    def __init__(self, *missing: str, required: Sequence[str] = ()) -> None:
        noun = "scope" if len(missing) == 1 else "scopes"
        names = " and ".join(f"'{name}'" for name in missing)
        super().__init__(f"this operation requires the {noun} {names}", "insufficient_scope")
        self.missing = missing
        self.scope = " ".join(required or missing)
