"""`python -m service dev` (what `make run` runs): the whole service on one machine.

Uses the configured PostgreSQL and Redis when they answer, else starts embedded ones under
`./var/`; creates the database, migrates, generates local secrets, then runs the api and a
worker as child processes with their logs interleaved and labelled. Ctrl-C stops everything.
"""

from __future__ import annotations

import asyncio
import functools
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

from service.devtools import keys
from service.devtools.postgres import start_postgres
from service.devtools.redis import start_redis
from service.devtools.supervision import EmbeddedServer, answers
from service.process import die_with_parent
from service.repositories.migrator import migrate
from service.settings import Settings

VAR = Path("var")
STOP_TIMEOUT = 20.0


def run_dev(settings: Settings) -> int:
    servers: list[EmbeddedServer] = []
    try:
        env = _prepare(settings, servers)
    except Exception as exc:  # anything here is a setup problem to show plainly, then stop
        _say(f"cannot start: {exc}")
        for server in servers:
            server.stop()
        return 1
    try:
        return _supervise(env)
    finally:
        for server in servers:
            server.stop()


def _prepare(settings: Settings, servers: list[EmbeddedServer]) -> dict[str, str]:
    VAR.mkdir(exist_ok=True)
    env = dict(os.environ)
    env.setdefault("SERVICE__LOGGING__FORMAT", "text")

    database_url = settings.database.url
    if not answers(database_url):
        _say(f"PostgreSQL does not answer at {_host(database_url)}; starting an embedded one")
        servers.append(start_postgres(VAR / "embedded"))
        database_url = _with_database(servers[-1].url, urlsplit(database_url).path.lstrip("/"))
    asyncio.run(_create_database(database_url))
    env["SERVICE__DATABASE__URL"] = database_url

    redis_url = settings.redis.url
    if not answers(redis_url):
        _say(f"Redis does not answer at {_host(redis_url)}; starting an embedded one")
        servers.append(start_redis(VAR / "embedded"))
        redis_url = servers[-1].url
    env["SERVICE__REDIS__URL"] = redis_url

    keys = settings.artifacts
    if not keys.hmac_key and keys.key_id not in keys.hmac_keys:
        env["SERVICE__ARTIFACTS__HMAC_KEY"] = _local_secret(VAR / "artifact-hmac.key")
    token = _configure_dev_auth(settings, env)
    # On a laptop the receivers being tried are on it too (loopback, the LAN).
    env.setdefault("SERVICE__WEBHOOKS__ALLOW_PRIVATE", "true")

    applied = asyncio.run(migrate(database_url, default_tenant=settings.auth.default_tenant))
    _say(f"database ready ({len(applied)} migration(s) applied)")
    base = f"http://{settings.http.host or '127.0.0.1'}:{settings.http.port}"
    _say(f"API docs: {base}/docs   readiness: {base}/readyz")
    if token:
        _say("token with every scope (valid 12 h); paste it into Authorize on /docs:")
        print(f"\n{token}\n\n  Authorization: Bearer {token}\n", flush=True)
    return env


def _configure_dev_auth(settings: Settings, env: dict[str, str]) -> str | None:
    """jwt mode with no identity provider configured: trust a local development key."""
    auth = settings.auth
    if auth.mode != "jwt" or auth.jwks_url or auth.jwks_file:
        return None
    keys.ensure_dev_key(auth.dev_key_file)
    jwks = keys.write_dev_jwks(auth.dev_key_file)
    env["SERVICE__AUTH__JWKS_FILE"] = str(jwks)
    env["SERVICE__AUTH__ISSUER"] = auth.issuer or keys.DEV_ISSUER
    env["SERVICE__AUTH__AUDIENCE"] = auth.audience or keys.DEV_AUDIENCE
    return keys.mint_token(auth, "developer", ["admin"], 12 * 3600)


def _local_secret(path: Path) -> str:
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip()


async def _create_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    admin = await asyncpg.connect(_with_database(url, "postgres"), timeout=10)
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await admin.execute(f'CREATE DATABASE "{name.replace(chr(34), chr(34) * 2)}"')
            _say(f"created database {name}")
    finally:
        await admin.close()


def _supervise(env: dict[str, str]) -> int:
    children = {
        label: subprocess.Popen(
            [sys.executable, "-m", "service", label],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us only; we stop the children in order
            # ...and should we be SIGKILLed, the kernel stops them for us.
            preexec_fn=functools.partial(die_with_parent, signal.SIGTERM, os.getpid()),
        )
        for label in ("api", "worker")
    }
    for label, child in children.items():
        threading.Thread(target=_relay, args=(label, child), daemon=True).start()

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    status = 0
    try:
        while not stopping.is_set():
            exited = [label for label, c in children.items() if c.poll() is not None]
            if exited:
                _say(f"{', '.join(exited)} exited; stopping")
                status = 1
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    _say("stopping")
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for child in children.values():
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    return status


def _relay(label: str, child: subprocess.Popen[bytes]) -> None:
    assert child.stdout is not None
    for line in child.stdout:
        sys.stdout.write(f"{label:<6} | {line.decode(errors='replace')}")
        sys.stdout.flush()


def _say(message: str) -> None:
    print(f"dev    | {message}", flush=True)


def _host(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


def _with_database(url: str, name: str) -> str:
    return urlsplit(url)._replace(path=f"/{name}").geturl()
