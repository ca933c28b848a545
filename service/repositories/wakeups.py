"""Hearing `NOTIFY events` and `NOTIFY job_changed` for the streams of one api process, on a
connection of its own (held for the life of the process, so never a pooled one)."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg

from service.repositories.notifications import Listening
from service.settings import DatabaseSettings

EVENTS_CHANNEL = "events"  # payload `tenant/position`, sent by migration 0015's event_write
JOB_CHANNEL = "job_changed"  # payload `tenant/job id`, sent by migration 0016's trigger
APPLICATION_NAME = "models-service streams"


class Wakeups(Listening):
    """Stream wake-ups: which tenant's outbox or which job moved."""

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
            session.notice_loss()
            for channel in (EVENTS_CHANNEL, JOB_CHANNEL):
                await conn.add_listener(
                    channel, lambda _conn, _pid, name, payload: on_notify(name, payload)
                )
        except BaseException:
            await session.close()
            raise
        return session
