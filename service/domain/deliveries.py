"""The database side of webhook delivery: which deliveries are due, and what became of them.

The worker's delivery engine (`service/webhooks/delivery.py`) decides when to look and makes the
HTTP requests; these use cases claim deliveries and record attempts, across tenants, as
`models_maintenance`. PostgreSQL alone holds a delivery's state: a claim is a lease on the row,
so a worker that dies mid-attempt leaves a delivery that is due again once its lease runs out
(at least once). Redis plays no part.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping

from service.repositories.database import Database
from service.repositories.deliveries import (
    Attempt,
    DeliveryRepository,
    DueDelivery,
    listen_forever,
)

__all__ = ["Attempt", "Deliveries", "DueDelivery"]


class Deliveries:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(
        self, limit: int, per_webhook: int, busy: Mapping[uuid.UUID, int], lease_seconds: float
    ) -> list[DueDelivery]:
        """Due deliveries, leased to the caller; rows another worker holds are skipped."""
        async with self.db.maintenance() as conn:
            return await DeliveryRepository(conn).claim(limit, per_webhook, busy, lease_seconds)

    async def finish(self, due: DueDelivery, attempt: Attempt) -> bool:
        """The attempt and the delivery's new state, in one transaction. False when the lease
        was lost (the attempt outlived it and another worker claimed the delivery, or its webhook
        was deleted): then nothing is recorded, and the new holder decides."""
        async with self.db.maintenance() as conn:
            return await DeliveryRepository(conn).finish(due, attempt)

    async def listen(self, on_wake: Callable[[], None]) -> None:
        """Calls `on_wake` whenever deliveries may have become due; runs until cancelled."""
        await listen_forever(self.db.settings, on_wake)
