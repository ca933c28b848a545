"""Hearing `NOTIFY model_changed` on a connection of its own (not the pool's: it is held for the
life of the process, and a pooled connection would be reset between uses). `Listening` is the
session both this and the streams' `Wakeups` keep, and `listen_forever` keeps one open."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from service.repositories.database import OUTAGE_ERRORS
from service.repositories.models import NOTIFY_CHANNEL, changed_model
from service.settings import DatabaseSettings

log = logging.getLogger(__name__)

# What ends a listening session: the server went away or stopped answering the keepalive.
LISTEN_ERRORS: tuple[type[BaseException], ...] = (*OUTAGE_ERRORS, TimeoutError)
KEEPALIVE_SECONDS = 10.0


class Listening:
    """One listening session on a connection of its own; `until_lost` returns or raises
    LISTEN_ERRORS when it ends."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.lost = asyncio.Event()

    async def until_lost(self, keepalive_seconds: float) -> None:
        # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation that
        # lands as its timeout fires, and this loop would then outlive the process's shutdown.
        while not self.lost.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(keepalive_seconds):
                    await self.lost.wait()
            if not self.lost.is_set():  # a silent network loss never fires the listener
                async with asyncio.timeout(keepalive_seconds):
                    await self.conn.fetchval("SELECT 1")

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.conn.close(), 2)

    def notice_loss(self) -> None:
        """Have the connection's termination set `lost`."""
        self.conn.add_termination_listener(functools.partial(_set_event, self.lost))


async def listen_forever(
    open_session: Callable[[], Awaitable[Listening]],
    listening: asyncio.Event,
    caught_up: Callable[[], None],
    what: str,
) -> None:
    """Keeps a session open for the life of the task, reconnecting after 0.5 s, doubling to
    10 s, while PostgreSQL does not answer. `caught_up` runs when a session starts and when it
    ends: notifications may have been missed while none listened. `listening` is set while one
    does."""
    delay = 0.5
    while True:
        try:
            session = await open_session()
        except OUTAGE_ERRORS:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
            continue
        try:
            caught_up()
            listening.set()
            delay = 0.5
            await session.until_lost(KEEPALIVE_SECONDS)
        except LISTEN_ERRORS:
            pass
        finally:
            listening.clear()
            caught_up()
            await session.close()
        log.warning("lost the %s; reconnecting", what)


class ModelChanges(Listening):
    """Model changes: which cached models are stale."""

    @classmethod
    async def listen(
        cls, settings: DatabaseSettings, on_change: Callable[[str, str], None]
    ) -> ModelChanges:
        """Calls `on_change(tenant, model name)` for every notification; raises OUTAGE_ERRORS."""
        conn = await asyncpg.connect(settings.url, timeout=settings.connect_timeout)
        session = cls(conn)
        try:
            session.notice_loss()
            await conn.add_listener(
                NOTIFY_CHANNEL,
                lambda _conn, _pid, _channel, payload: on_change(*changed_model(payload)),
            )
        except BaseException:
            await session.close()
            raise
        return session


def _set_event(event: asyncio.Event, _conn: object) -> None:
    event.set()
