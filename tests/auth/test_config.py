"""Configurations that cannot work stop the process before it serves (exit status 2)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from service.auth.backend import BearerAuthenticator
from service.auth.errors import AuthError
from service.auth.factory import NoAuthentication, build_authenticator
from service.devtools.keys import ensure_dev_key, write_dev_jwks
from service.settings import ConfigError
from tests.auth.idp import Key, bearer, mint
from tests.factories import ROOT, auth_settings


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"issuer": "", "audience": "", "jwks_url": ""},
            "needs auth.issuer, auth.audience, auth.jwks_url or auth.jwks_file",
        ),
        ({"audience": ""}, 'auth.mode = "jwt" needs auth.audience'),
        ({"jwks_file": "var/x.json"}, "set only one of auth.jwks_url and auth.jwks_file"),
        ({"jwks_url": "ftp://idp.test/jwks"}, "auth.jwks_url must be an http(s) URL"),
        ({"algorithms": []}, "auth.algorithms is empty"),
        ({"algorithms": ["RS256", "HS256"]}, "auth.algorithms: 'HS256' not accepted"),
        ({"algorithms": ["none"]}, "auth.algorithms: 'none' not accepted"),
        (
            {"mode": "introspection", "introspection_client_secret": ""},
            "needs SERVICE__AUTH__INTROSPECTION_CLIENT_SECRET (environment)",
        ),
        (
            {"mode": "introspection", "issuer": "", "audience": ""},
            'auth.mode = "introspection" needs auth.issuer, auth.audience',
        ),
        (
            {"mode": "introspection", "introspection_url": ""},
            'auth.mode = "introspection" needs auth.introspection_url',
        ),
    ],
)
def test_unusable_settings_are_config_errors(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_authenticator(auth_settings(**overrides))
    assert message in str(caught.value)


def test_missing_jwks_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="auth.jwks_file .*missing.json"):
        build_authenticator(auth_settings(jwks_url="", jwks_file=str(tmp_path / "missing.json")))


def test_private_key_as_jwks_file_is_a_config_error(tmp_path: Path) -> None:
    key_file = tmp_path / "dev-jwk.json"
    ensure_dev_key(key_file)
    key_file.write_text('{"keys": [' + key_file.read_text() + "]}")
    with pytest.raises(ConfigError, match="private or symmetric key material"):
        build_authenticator(auth_settings(jwks_url="", jwks_file=str(key_file)))


@pytest.mark.anyio
async def test_jwks_file_mode_trusts_the_keys_of_the_file_only(
    tmp_path: Path, keys: dict[str, Key]
) -> None:
    key_file = tmp_path / "dev-jwk.json"
    jwks = write_dev_jwks(key_file)
    auth = build_authenticator(auth_settings(jwks_url="", jwks_file=str(jwks)))
    assert isinstance(auth, BearerAuthenticator)
    try:
        now = time.time()
        who = await auth.authenticate(bearer(mint(ensure_dev_key(key_file), now, sub="ada")))
        assert who.sub == "ada"
        with pytest.raises(AuthError) as refused:
            await auth.authenticate(bearer(mint(keys["rsa1"], now)))
        assert refused.value.reason == "unknown_key"
    finally:
        await auth.close()


def test_disabled_mode_warns_at_every_start(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="service.auth.factory"):
        for _ in range(2):
            assert isinstance(build_authenticator(auth_settings(mode="disabled")), NoAuthentication)
    assert caplog.text.count("authentication is DISABLED") == 2


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("jwt", 'auth.mode = "jwt" needs auth.issuer, auth.audience'),
        ("introspection", 'auth.mode = "introspection" needs auth.issuer, auth.audience'),
    ],
)
def test_api_refuses_to_start_without_issuer_and_audience(
    tmp_path: Path, mode: str, message: str
) -> None:
    empty = tmp_path / "config.toml"
    empty.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVICE")}
    env.update(SERVICE_CONFIG=str(empty), SERVICE__AUTH__MODE=mode)
    done = subprocess.run(
        [sys.executable, "-m", "service", "api"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert f"configuration error: {message}" in done.stderr
