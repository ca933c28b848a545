"""Builds the authenticator that `[auth] mode` asks for."""

from __future__ import annotations

import logging

from starlette.requests import HTTPConnection

from service.auth.principal import ADMIN, Authenticator, Principal
from service.settings import AuthSettings

log = logging.getLogger(__name__)


class NoAuthentication:
    """`mode = "disabled"`: every caller is an anonymous administrator."""

    _anonymous = Principal(sub="anonymous", scopes=frozenset({ADMIN}))

    async def authenticate(self, conn: HTTPConnection) -> Principal:
        return self._anonymous

    async def close(self) -> None:
        return None


def build_authenticator(settings: AuthSettings) -> Authenticator:
    if settings.mode == "disabled":
        log.warning("authentication is DISABLED: every request is treated as an administrator")
        return NoAuthentication()
    raise NotImplementedError(settings.mode)
