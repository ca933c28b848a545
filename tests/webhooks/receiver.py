"""A webhook receiver for tests (a small HTTP/1.1 server on 127.0.0.1 that answers with scripted
statuses and keeps what it was sent), and webhooks and events written straight into the
database, as the API and the outbox's triggers would."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec

from service.settings import Settings
from service.webhooks.secrets import SecretBox, new_secret
from tests.tcpproxy import free_port


@dataclass(frozen=True)
class Received:
    target: str  # the request line's path
    headers: dict[str, str]
    body: bytes


class Receiver:
    """Answers each request with the next of `statuses`, then with 200. With `hold_first`, the
    first request gets no answer until `stop` (a receiver that is slow while a worker dies)."""

    def __init__(
        self, statuses: Iterable[int] = (), hold_first: bool = False, port: int | None = None
    ) -> None:
        self.statuses = list(statuses)
        self.port = port or free_port()
        self.requests: list[Received] = []
        self._hold = asyncio.Event() if hold_first else None
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> Receiver:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        return self

    def release(self) -> None:
        """Answers the held first request."""
        assert self._hold is not None
        self._hold.set()

    async def stop(self) -> None:
        if self._hold is not None:
            self._hold.set()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            headers = {}
            for line in head[1:]:
                if ":" in line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(Received(head[0].split(" ")[1], headers, body))
            if self._hold is not None and len(self.requests) == 1:
                await self._hold.wait()
            status = self.statuses.pop(0) if self.statuses else 200
            writer.write(
                f"HTTP/1.1 {status} Scripted\r\ncontent-length: 0\r\n"
                "connection: close\r\n\r\n".encode()
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def add_webhook(
    raw: asyncpg.Connection,
    settings: Settings,
    url: str,
    events: list[str],
    tenant: str = "default",
) -> tuple[uuid.UUID, str]:
    """A webhook row as `POST /webhooks` would store it; returns its id and secret."""
    webhook_id = uuid.uuid4()
    secret = new_secret()
    box = SecretBox.from_settings(settings)
    await raw.execute(
        "INSERT INTO webhooks (id, tenant, url, events, secret, secret_key_id)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        webhook_id,
        tenant,
        url,
        events,
        box.seal(tenant, webhook_id, secret),
        box.key_id,
    )
    return webhook_id, secret


async def write_event(
    raw: asyncpg.Connection, type: str, subject: str, data: Any, tenant: str = "default"
) -> None:
    """An event through the outbox's one writer, as a trigger writes it at commit."""
    await raw.execute(
        "SELECT event_write($1, $2, $3, $4::jsonb)",
        tenant,
        type,
        subject,
        msgspec.json.encode(data).decode(),
    )


async def delivery_rows(raw: asyncpg.Connection) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await raw.fetch(
        "SELECT id, webhook_id, status, attempts, finished_at FROM webhook_deliveries ORDER BY id"
    )
    return rows


async def attempt_rows(raw: asyncpg.Connection) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await raw.fetch(
        "SELECT delivery_id, attempt, status_code, error, duration_ms, next_attempt_at"
        " FROM webhook_attempts ORDER BY id"
    )
    return rows
