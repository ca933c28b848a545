"""A local signing key for development: `python -m service token` and `make run`.

The private key lives in `auth.dev_key_file` (default `var/dev-jwk.json`, mode 0600, never
committed: `var/` is ignored by git). `make run` points `SERVICE__AUTH__JWKS_FILE` at the public
half written by `write_dev_jwks`, so the service verifies development tokens exactly as it
verifies an IdP's: same code path, same checks.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from service.settings import AuthSettings

DEV_ISSUER = "models-service-dev"
DEV_AUDIENCE = "models-service"
DEV_ALGORITHM = "ES256"


def ensure_dev_key(path: str | Path) -> ECKey:
    """The development private key at `path`, generated (P-256, mode 0600) on first use."""
    path = Path(path)
    if not path.exists():
        key = ECKey.generate_key(
            "P-256", parameters={"alg": DEV_ALGORITHM, "use": "sig"}, auto_kid=True
        )
        _create_private(path, json.dumps(key.as_dict(private=True)))
    return ECKey.import_key(json.loads(path.read_text()))


def _create_private(path: Path, text: str) -> None:
    """Write `text` to a new file `path` readable by its owner only, without ever replacing one.

    The key is written to a 0600 temporary file and hard-linked into place, so a concurrent
    `make run` and `python -m service token` agree on one key and no reader sees half a file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".dev-jwk-")  # created with mode 0600
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.link(tmp, path)
    except FileExistsError:
        pass  # another process created it first; use theirs
    finally:
        os.unlink(tmp)


def dev_jwks_path(key_path: str | Path) -> Path:
    """Where the public JWKS for `key_path` goes: `var/dev-jwk.json` → `var/dev-jwks.json`."""
    key_path = Path(key_path)
    return key_path.with_name(f"{key_path.stem}s{key_path.suffix or '.json'}")


def write_dev_jwks(path: str | Path, target: str | Path | None = None) -> Path:
    """Write the public JWKS of the development key at `path` (created if needed) to `target`,
    by default next to the key. A container keeps the two apart, so the api, which reads only
    the JWKS, never sees the private key."""
    key = ensure_dev_key(path)
    target = dev_jwks_path(path) if target is None else Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(KeySet([key]).as_dict(private=False), indent=2) + "\n"
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, target)  # atomic, so a starting service never reads a partial file
    return target


def mint_token(
    settings: AuthSettings,
    sub: str,
    scopes: Iterable[str],
    ttl: int,
    *,
    tenant: str | None = None,
) -> str:
    """A development access token for `sub` with `scopes`, valid for `ttl` seconds, naming
    `tenant` in the `auth.tenant_claim` claim when given (else the token has no tenant claim).

    `iss`/`aud` come from the settings when set, so the token fits the configured service; else
    the `DEV_` constants that `make run` configures.
    """
    if ttl <= 0:
        raise ValueError("ttl must be a positive number of seconds")
    key = ensure_dev_key(settings.dev_key_file)
    now = int(time.time())
    claims = {
        "iss": settings.issuer or DEV_ISSUER,
        "aud": settings.audience or DEV_AUDIENCE,
        "sub": sub,
        "scope": " ".join(scopes),
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": uuid.uuid4().hex,
        "client_id": "models-service-dev",
    }
    if tenant is not None:
        claims[settings.tenant_claim] = tenant
    header = {"alg": DEV_ALGORITHM, "kid": key.kid, "typ": "at+jwt"}
    return jwt.encode(header, claims, key, algorithms=[DEV_ALGORITHM])
