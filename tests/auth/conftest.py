"""Fixtures of the auth tests: keys (generated once per session), an in-process IdP, a clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest

from service.auth.backend import BearerAuthenticator
from service.auth.factory import build_authenticator
from tests.auth.idp import Clock, Idp, Key, ec_key, rsa_key
from tests.factories import AuthFactory, auth_settings


@pytest.fixture(scope="session")
def keys() -> dict[str, Key]:
    return {"rsa1": rsa_key("rsa1"), "rsa2": rsa_key("rsa2"), "ec1": ec_key("ec1")}


@pytest.fixture
def idp(keys: dict[str, Key]) -> Idp:
    return Idp(keys=[keys["rsa1"], keys["ec1"]])


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def idp_client(idp: Idp) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=idp.app())) as client:
        yield client


@pytest.fixture
async def make_auth(idp_client: httpx2.AsyncClient, clock: Clock) -> AsyncIterator[AuthFactory]:
    """Builds authenticators (through the production factory) that reach the in-process IdP."""
    built: list[BearerAuthenticator] = []

    async def build(**overrides: Any) -> BearerAuthenticator:
        auth = build_authenticator(auth_settings(**overrides), idp_client, clock=clock)
        assert isinstance(auth, BearerAuthenticator)
        built.append(auth)
        return auth

    yield build
    for auth in built:
        await auth.close()
