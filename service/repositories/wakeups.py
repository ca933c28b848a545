"""Hearing `NOTIFY events` and `NOTIFY job_changed` for the streams of one api process, on a
connection of its own (held for the life of the process, so never a pooled one)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable

import asyncpg

from service.repositories.notifications import LISTEN_ERRORS
from service.settings import DatabaseSettings

EVENTS_CHANNEL = "events"  # payload `tenant/position`, sent by migration 0015's event_write
JOB_CHANNEL = "job_changed"  # payload `tenant/job id`, sent by migration 0016's trigger
APPLICATION_NAME = "models-service streams"

__all__ = ["APPLICATION_NAME", "EVENTS_CHANNEL", "JOB_CHANNEL", "LISTEN_ERRORS", "Wakeups"]


class Wakeups:
    """One listening session; `until_lost` returns or raises LISTEN_ERRORS when it ends."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.lost = asyncio.Event()

    @classmethod
    async def listen(
        cls, settings: DatabaseSettings, on_notify: Callable[[str, str], None]
    ) -> Wakeups:
        """Calls `on_notify(channel, payload)` for every notification; raises OUTAGE_ERRORS.

        The connection sees no rows at all (no tenant is set): it only hears payloads, and
        the streams read what they announce under their own caller's tenant."""
        conn = await asyncpg.connect(
            settings.url,
            timeout=settings.connect_timeout,
            server_settings={"application_name": APPLICATION_NAME},
        )
        session = cls(conn)
        try:
            conn.add_termination_listener(functools.partial(_set_event, session.lost))
            for channel in (EVENTS_CHANNEL, JOB_CHANNEL):
                await conn.add_listener(
                    channel, lambda _conn, _pid, name, payload: on_notify(name, payload)
                )
        except BaseException:
            await session.close()
            raise
        return session

    async def until_lost(self, keepalive_seconds: float) -> None:
        while not self.lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.lost.wait(), keepalive_seconds)
            if not self.lost.is_set():  # a silent network loss never fires the listener
                await asyncio.wait_for(self.conn.fetchval("SELECT 1"), keepalive_seconds)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.conn.close(), 2)


def _set_event(event: asyncio.Event, _conn: object) -> None:
    event.set()
