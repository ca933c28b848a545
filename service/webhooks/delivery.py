"""The delivery engine: the worker's side of webhooks.

It claims due deliveries (see `service/domain/deliveries.py`) when PostgreSQL says new ones exist
(`NOTIFY webhook_deliveries`) and every `webhooks.poll_seconds` (for retries coming due, and
notifications missed while disconnected), at most `max_in_flight` at once and
`max_in_flight_per_webhook` per webhook, each under a lease of `lease_seconds`. Every attempt
checks the receiver's address again and connects to the address it checked (so a DNS answer that
changes between the check and the connection cannot point it elsewhere), never follows a
redirect, and is recorded with the delivery's new state in one transaction; `retries.py` says
what the answer means. PostgreSQL holds all of it; Redis plays no part.

Stopping stops the claims and lets attempts in flight finish for a while; one cut short keeps
its lease, which expires, and the delivery is made again: at least once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Literal

import httpx2
from prometheus_client import Counter, Histogram

from service.domain.deliveries import Attempt, Deliveries, DueDelivery
from service.domain.errors import Unavailable
from service.settings import WebhookSettings
from service.webhooks.addresses import AddressRefused, check_url
from service.webhooks.retries import Answer, Outcome, next_attempt
from service.webhooks.secrets import SecretBox, SecretUnreadable
from service.webhooks.signing import event_body, message_id, signed_headers

log = logging.getLogger(__name__)

USER_AGENT = "models-service-webhooks"
_STATUS: dict[Outcome, Literal["pending", "delivered", "failed"]] = {
    Outcome.delivered: "delivered",
    Outcome.retry: "pending",
    Outcome.failed: "failed",
}


class Deliverer:
    """Runs until `stop`; `outcomes` counts attempts by outcome, `lag` observes event → 2xx."""

    def __init__(
        self,
        deliveries: Deliveries,
        settings: WebhookSettings,
        box: SecretBox,
        outcomes: Counter,
        lag: Histogram,
    ) -> None:
        self.deliveries = deliveries
        self.settings = settings
        self.box = box
        self.outcomes = outcomes
        self.lag = lag
        self._client = httpx2.AsyncClient(
            follow_redirects=False,
            trust_env=False,  # a proxy from the environment would connect past the address check
            timeout=settings.attempt_timeout_seconds,
            # A connection is pinned to an address under one host name: never reuse it for another.
            limits=httpx2.Limits(max_connections=None, max_keepalive_connections=0),
            headers={"user-agent": USER_AGENT},
        )
        self._wake = asyncio.Event()
        self._stopping = False
        self._saturated = False
        self._in_flight: dict[asyncio.Task[None], uuid.UUID] = {}
        self._runner: asyncio.Task[None] | None = None
        if settings.lease_seconds <= settings.attempt_timeout_seconds:
            log.warning(
                "webhooks.lease_seconds should exceed attempt_timeout_seconds: a slow attempt"
                " outlives its lease and the delivery may be made twice at once",
            )

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run())

    async def stop(self, wait_seconds: float) -> None:
        if self._stopping:
            return
        self._stopping = True
        self._wake.set()
        if self._runner is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_seconds):
                    await asyncio.shield(self._runner)
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        if self._in_flight:
            _, unfinished = await asyncio.wait(list(self._in_flight), timeout=wait_seconds)
            for task in unfinished:  # their leases run out; another worker delivers them
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
        await self._client.aclose()

    async def _run(self) -> None:
        listener = asyncio.create_task(self.deliveries.listen(self._wake.set))
        try:
            while not self._stopping:
                self._wake.clear()
                try:
                    await self._claim()
                except Unavailable:
                    pass
                except Exception:  # claiming must never end the loop; it runs again soon
                    log.exception("claiming webhook deliveries failed")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.poll_seconds):
                        await self._wake.wait()
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def _claim(self) -> None:
        free = self.settings.max_in_flight - len(self._in_flight)
        if free <= 0:
            self._saturated = True
            return
        busy = collections.Counter(self._in_flight.values())
        claimed = await self.deliveries.claim(
            free, self.settings.max_in_flight_per_webhook, busy, self.settings.lease_seconds
        )
        self._saturated = len(claimed) == free
        for due in claimed:
            task = asyncio.create_task(self._deliver(due))
            self._in_flight[task] = due.webhook_id
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        webhook = self._in_flight.pop(task)
        # A slot came free where claims had been held back: more may be waiting for it.
        at_cap = sum(1 for w in self._in_flight.values() if w == webhook) + 1
        if self._saturated or at_cap >= self.settings.max_in_flight_per_webhook:
            self._wake.set()

    async def _deliver(self, due: DueDelivery) -> None:
        started_at = datetime.now(UTC)
        started = time.monotonic()
        answer = await self._attempt(due)
        duration_ms = (time.monotonic() - started) * 1000
        now = datetime.now(UTC)
        outcome = answer.outcome()
        retry_at = None
        if outcome is Outcome.retry:
            retry_at = next_attempt(due.attempts + 1, due.created_at, now, self.settings)
            if retry_at is None:
                outcome = Outcome.failed
        attempt = Attempt(
            at=started_at,
            status=_STATUS[outcome],
            status_code=answer.status_code,
            error=answer.error,
            duration_ms=duration_ms,
            next_attempt_at=retry_at,
        )
        try:
            kept = await self.deliveries.finish(due, attempt)
        except Exception:  # the lease runs out and the delivery is made again
            log.exception("could not record a webhook attempt", extra=_about(due))
            return
        if not kept:
            log.warning("a webhook attempt outlived its lease; not recorded", extra=_about(due))
            return
        self.outcomes.labels(outcome.value).inc()
        if outcome is Outcome.delivered:
            self.lag.observe(max(0.0, (now - due.at).total_seconds()))

    async def _attempt(self, due: DueDelivery) -> Answer:
        seconds = self.settings.attempt_timeout_seconds
        try:
            async with asyncio.timeout(seconds):
                return await self._send(due)
        except TimeoutError:
            return Answer(error=f"no answer within {seconds:g} s", transient=True)
        except Exception as exc:  # unforeseen: recorded and retried, never a stuck lease
            log.exception("a webhook attempt failed unexpectedly", extra=_about(due))
            return Answer(error=f"{type(exc).__name__}: {exc}", transient=True)

    async def _send(self, due: DueDelivery) -> Answer:
        try:
            addresses = await check_url(due.url, self.settings.allow_private)
        except AddressRefused as exc:
            return Answer(error=f"address refused: {exc}")
        try:
            secret = self.box.open(due.tenant, due.webhook_id, due.secret, due.secret_key_id)
        except SecretUnreadable as exc:  # a key configured wrongly; fixing it lets retries pass
            return Answer(error=f"cannot sign: {exc}", transient=True)
        body = event_body(due.event_id, due.type, due.timestamp, due.tenant, due.data)
        headers = signed_headers(secret, message_id(due.event_id), int(time.time()), body)
        request = self._pinned(due.url, addresses[0], headers, body)
        try:
            response = await self._client.send(request, stream=True)
            await response.aclose()  # the status is the answer; the body is never read
        except httpx2.TimeoutException:
            return Answer(error="timed out", transient=True)
        except httpx2.TransportError as exc:
            return Answer(error=f"{type(exc).__name__}: {exc}", transient=True)
        return Answer(status_code=response.status_code)

    def _pinned(
        self, url: str, address: str, headers: dict[str, str], body: bytes
    ) -> httpx2.Request:
        """A request to `address` that the receiver sees as one to `url`'s host (Host header,
        and the TLS server name that its certificate is checked against)."""
        target = httpx2.URL(url)
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        return self._client.build_request(
            "POST",
            target.copy_with(host=address),
            headers={**headers, "host": target.netloc.decode()},
            content=body,
            extensions=extensions,
        )


def _about(due: DueDelivery) -> dict[str, object]:
    return {"delivery": due.id, "webhook": str(due.webhook_id), "tenant": due.tenant}
