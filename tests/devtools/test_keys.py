"""The development key: `python -m service token` mints what the service (jwks_file) accepts,
and compose's one-shot `dev-key` job creates the key once and keeps it."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgspec
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from service.auth.backend import BearerAuthenticator
from service.auth.factory import build_authenticator
from service.devtools.keys import (
    DEV_AUDIENCE,
    DEV_ISSUER,
    ensure_dev_key,
    mint_token,
    write_dev_jwks,
)
from service.settings import Settings
from tests.auth.idp import bearer
from tests.compose import compose_service, under
from tests.factories import ClientFactory, auth_settings, make_settings

ROOT = Path(__file__).resolve().parents[2]


def run_token_command(key_file: Path, tmp_path: Path, *args: str) -> str:
    empty = tmp_path / "config.toml"
    empty.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVICE")}
    env.update(SERVICE_CONFIG=str(empty), SERVICE__AUTH__DEV_KEY_FILE=str(key_file))
    done = subprocess.run(
        [sys.executable, "-m", "service", "token", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


@pytest.mark.anyio
async def test_token_command_output_verifies_against_the_dev_jwks(tmp_path: Path) -> None:
    key_file = tmp_path / "var" / "dev-jwk.json"
    token = run_token_command(
        key_file, tmp_path, "--sub", "dana", "--scopes", "models:read models:write", "--ttl", "120"
    )
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    jwks = write_dev_jwks(key_file)
    assert jwks == tmp_path / "var" / "dev-jwks.json"
    assert all("d" not in key for key in json.loads(jwks.read_text())["keys"])
    settings = auth_settings(
        issuer=DEV_ISSUER, audience=DEV_AUDIENCE, jwks_url="", jwks_file=str(jwks)
    )
    auth = build_authenticator(settings)
    assert isinstance(auth, BearerAuthenticator)
    who = await auth.authenticate(bearer(token))
    assert who.sub == "dana"
    assert who.scopes == {"models:read", "models:write"}
    claims = jwt.decode(token, KeySet.import_key_set(json.loads(jwks.read_text()))).claims
    assert claims["exp"] - claims["iat"] == 120
    await auth.close()


def test_mint_uses_configured_issuer_and_audience(tmp_path: Path) -> None:
    settings = auth_settings(
        issuer="https://idp.example", audience="api://models", dev_key_file=str(tmp_path / "k.json")
    )
    token = mint_token(settings, "erin", ["admin"], 60)
    claims = jwt.decode(token, ensure_dev_key(settings.dev_key_file)).claims
    assert (claims["iss"], claims["aud"], claims["sub"], claims["scope"]) == (
        "https://idp.example",
        "api://models",
        "erin",
        "admin",
    )


def test_mint_falls_back_to_dev_issuer_and_audience(tmp_path: Path) -> None:
    settings = auth_settings(issuer="", audience="", dev_key_file=str(tmp_path / "k.json"))
    claims = jwt.decode(mint_token(settings, "x", [], 60), ensure_dev_key(tmp_path / "k.json"))
    assert (claims.claims["iss"], claims.claims["aud"]) == (DEV_ISSUER, DEV_AUDIENCE)


def test_mint_refuses_a_non_positive_ttl(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ttl"):
        mint_token(auth_settings(dev_key_file=str(tmp_path / "k.json")), "x", [], 0)


def test_dev_key_is_created_once_even_when_raced(tmp_path: Path) -> None:
    path = tmp_path / "dev-jwk.json"
    with ThreadPoolExecutor(8) as pool:
        kids = set(pool.map(lambda _: ensure_dev_key(path).kid, range(16)))
    assert len(kids) == 1
    assert ensure_dev_key(path).kid in kids
    assert [p.name for p in tmp_path.iterdir()] == ["dev-jwk.json"]  # no temporary files left


def run_as_container(env: dict[str, str], command: list[str]) -> str:
    """`python -m service COMMAND` as the image runs it: from the repository root (its
    config.toml) with the container's SERVICE__ variables and no others."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SERVICE")}
    done = subprocess.run(
        [sys.executable, "-m", "service", *command],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def dev_key_job_twice_then_token(tmp_path: Path) -> str:
    """Runs compose's dev-key job twice, as two `docker compose up` would, checks that the
    second run kept the key, then mints a token from the same container."""
    job, api = compose_service("dev-key"), compose_service("api")
    env = {k: under(tmp_path, str(v)) for k, v in job["environment"].items()}
    command = [under(tmp_path, str(arg)) for arg in job["command"]]
    key_file = Path(env["SERVICE__AUTH__DEV_KEY_FILE"])
    jwks_file = Path(under(tmp_path, api["environment"]["SERVICE__AUTH__JWKS_FILE"]))

    assert run_as_container(env, command).startswith("created")
    key, jwks = key_file.read_bytes(), jwks_file.read_bytes()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.parent != jwks_file.parent
    assert run_as_container(env, command).startswith("kept")
    assert (key_file.read_bytes(), jwks_file.read_bytes()) == (key, jwks)
    return run_as_container(env, ["token", "--sub", "dana", "--scopes", "models:read"])


@pytest.mark.anyio
async def test_compose_dev_key_job_keeps_its_key_and_the_api_accepts_its_tokens(
    tmp_path: Path, settings: Settings, client_factory: ClientFactory
) -> None:
    token = dev_key_job_twice_then_token(tmp_path)
    api_auth = {
        key.removeprefix("SERVICE__AUTH__").lower(): under(tmp_path, str(value))
        for key, value in compose_service("api")["environment"].items()
        if key.startswith("SERVICE__AUTH__")
    }
    client = await client_factory(
        msgspec.structs.replace(settings, auth=make_settings(auth=api_auth).auth)
    )
    authorized = {"authorization": f"Bearer {token}"}
    listed = await client.get("/models", headers=authorized)
    assert listed.status_code == 200, listed.text
    assert (await client.get("/models")).status_code == 401
    refused = await client.post("/models", json={"name": "m"}, headers=authorized)
    assert refused.status_code == 403, refused.text
