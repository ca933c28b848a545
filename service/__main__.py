"""Process entry points: `python -m service api|worker|migrate|dev|dev-key|token`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

from service import logs
from service.settings import ConfigError, Settings, load_settings

log = logging.getLogger("service")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("api", help="serve the REST API with Hypercorn")
    worker = commands.add_parser("worker", help="run the background job worker")
    worker.add_argument(
        "--check", action="store_true", help="exit 0 while this worker's heartbeat is fresh"
    )
    commands.add_parser("migrate", help="apply pending database migrations")
    commands.add_parser("dev", help="migrate, then run api and worker (embedded servers if needed)")
    dev_key = commands.add_parser(
        "dev-key",
        help="create the development signing key (an existing one is kept) and its public JWKS",
    )
    dev_key.add_argument(
        "--jwks", default=None, help="where the public JWKS goes (default: next to the key)"
    )
    token = commands.add_parser("token", help="mint a development access token")
    token.add_argument("--sub", default="developer")
    token.add_argument("--scopes", default="admin", help="space-separated scopes")
    token.add_argument("--ttl", type=int, default=12 * 3600, help="lifetime in seconds")
    token.add_argument("--tenant", default=None, help="the tenant claim (default: none)")
    args = parser.parse_args(argv)

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2

    if args.command == "dev":
        from service.devtools.runner import run_dev

        return run_dev(settings)
    if args.command == "dev-key":
        return _write_dev_key(settings, args.jwks)
    if args.command == "token":
        from service.devtools.keys import mint_token

        print(
            mint_token(settings.auth, args.sub, args.scopes.split(), args.ttl, tenant=args.tenant)
        )
        return 0
    logs.configure(settings.logging.level, settings.logging.format)
    if args.command == "api":
        return _run_api(settings)
    if args.command == "worker":
        return _run_worker(settings, check=args.check)
    return _run_migrate(settings)


def _write_dev_key(settings: Settings, jwks: str | None) -> int:
    from pathlib import Path

    from service.devtools.keys import write_dev_jwks

    key_file = Path(settings.auth.dev_key_file)
    existed = key_file.exists()
    target = write_dev_jwks(key_file, jwks)
    print(f"{'kept' if existed else 'created'} {key_file}; public JWKS in {target}")
    return 0


def _run_api(settings: Settings) -> int:
    from hypercorn.asyncio import serve

    from service.http.app import begin_drain, create_app
    from service.process import hypercorn_config

    try:
        app = create_app(settings)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    config = hypercorn_config(settings.http)

    async def serve_until_signalled() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

        async def stopping() -> None:
            await stop.wait()
            # In-flight requests finish; streams, which never would, end; clients are told to
            # close their connections before Hypercorn closes the idle ones under them.
            drain = begin_drain(app)
            await drain.wait_quiet(settings.http.keep_alive_timeout)

        await serve(app, config, shutdown_trigger=stopping)  # type: ignore[arg-type]

    asyncio.run(serve_until_signalled())
    log.info("api stopped")
    return 0


def _run_worker(settings: Settings, *, check: bool) -> int:
    if check:
        from service.worker.health import check_health

        status: int = asyncio.run(check_health(settings))
        return status
    from service.artifacts.keys import Keyring, forget_key_variables
    from service.worker.app import run_worker

    try:
        Keyring.from_settings(settings.artifacts)  # the worker signs artifacts with it
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    forget_key_variables(os.environ)
    run_worker(settings)
    return 0


def _run_migrate(settings: Settings) -> int:
    from service.repositories.migrator import MigrationError, migrate

    try:
        applied = asyncio.run(
            migrate(settings.database.url, default_tenant=settings.auth.default_tenant)
        )
    except MigrationError as exc:
        print(f"migration error: {exc}", file=sys.stderr)
        return 1
    print(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
