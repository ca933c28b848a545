"""The streams of one api process: who is subscribed to what, how many each caller holds, and
the one listener that wakes them.

A stream never polls. It subscribes to a key (a tenant's events, or one job), and the process's
single `LISTEN` session sets the wake-up of every stream on that key; the stream then reads what
changed itself, under its caller's tenant. Notifications carry no rows, only which key moved,
so several arriving before a stream reads cost it one read.

A notification sent while the listener is away (PostgreSQL restarting) is lost, so every
stream is woken when the listener (re)connects and re-reads from where it stands: the outbox
position it last sent, or the job's row. Nothing is missed, only possibly read once more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Iterator

from service.domain.limits import TooBusy
from service.repositories.notifications import listen_forever
from service.repositories.wakeups import EVENTS_CHANNEL, JOB_CHANNEL, Wakeups
from service.settings import DatabaseSettings

log = logging.getLogger(__name__)


def events_key(tenant: str) -> str:
    return f"{EVENTS_CHANNEL}:{tenant}"


def job_key(tenant: str, job_id: object) -> str:
    return f"{JOB_CHANNEL}:{tenant}/{job_id}"


class Subscription:
    """A stream's wake-up: set by a notification on its key, a reconnect or a drain."""

    def __init__(self, key: str) -> None:
        self.key = key
        self._woken = asyncio.Event()

    def wake(self) -> None:
        self._woken.set()

    async def woken_within(self, seconds: float) -> bool:
        """Whether it was woken within `seconds` (then it is re-armed for the next wake-up)."""
        try:
            async with asyncio.timeout(seconds):
                await self._woken.wait()
        except TimeoutError:
            return False
        self._woken.clear()
        return True


class StreamHub:
    def __init__(self, database: DatabaseSettings, max_per_caller: int) -> None:
        self.database = database
        self.max_per_caller = max_per_caller
        self._subscribers: dict[str, set[Subscription]] = {}
        self._open: Counter[tuple[str, str]] = Counter()
        self._listener: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()
        self.draining = asyncio.Event()

    @contextlib.contextmanager
    def admitted(self, tenant: str, sub: str) -> Iterator[None]:
        """Holds one of the caller's open streams; over the cap, `TooBusy` (a 429)."""
        caller = (tenant, sub)
        if self._open[caller] >= self.max_per_caller:
            raise TooBusy(
                "streams",
                f"{self.max_per_caller} streams are already open for this caller on this server;"
                " close one first",
                retry_after=5,
            )
        self._open[caller] += 1
        try:
            yield
        finally:
            self._open[caller] -= 1
            if not self._open[caller]:
                del self._open[caller]

    @contextlib.contextmanager
    def subscribed(self, key: str) -> Iterator[Subscription]:
        subscription = Subscription(key)
        self._subscribers.setdefault(key, set()).add(subscription)
        try:
            yield subscription
        finally:
            subscribers = self._subscribers[key]
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[key]

    def drain(self) -> None:
        """The server is stopping: every stream ends now instead of holding the shutdown."""
        self.draining.set()
        self._wake_all()

    def notified(self, channel: str, payload: str) -> None:
        if channel == EVENTS_CHANNEL:
            key = events_key(payload.rpartition("/")[0])
        else:
            key = f"{channel}:{payload}"
        for subscription in self._subscribers.get(key, ()):
            subscription.wake()

    def _wake_all(self) -> None:
        for subscribers in self._subscribers.values():
            for subscription in subscribers:
                subscription.wake()

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen_forever())

    async def close(self) -> None:
        self.drain()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener

    async def _listen_forever(self) -> None:
        await listen_forever(
            lambda: Wakeups.listen(self.database, self.notified),
            self.listening,
            self._wake_all,  # what was sent while no one listened is read now
            "stream listener",
        )
