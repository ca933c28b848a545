"""Use cases of webhooks: register, list, read and delete a tenant's receivers, and list the
attempts to deliver to one.

The signing secret is made here and returned once; the row holds it sealed under a key from
the environment, with the webhook's tenant and id as associated data, which is why the id is
chosen here rather than by the table's default. The URL is checked (form and resolved
addresses) before any transaction opens, so a slow resolver holds no lock. The audit entries are
written by the table's triggers (migration 0016).
"""

from __future__ import annotations

import uuid

import msgspec

from service.domain.actors import current_actor
from service.domain.errors import Conflict, FieldError, InvalidInput, NotFound
from service.domain.limits import OverLimit
from service.repositories.database import Database
from service.repositories.webhooks import NewWebhook, WebhookRepository
from service.schemas.base import Page
from service.schemas.webhooks import DeliveryAttempt, WebhookCreate, WebhookCreated, WebhookOut
from service.webhooks.addresses import AddressRefused, check_url
from service.webhooks.secrets import SecretBox, new_secret


class TooManyWebhooks(OverLimit, Conflict):
    """The tenant has all the webhooks it may have (a 409: waiting frees none; deleting does)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            "webhooks",
            f"the tenant already has {limit} webhooks, the most it may have; delete one first",
        )


class Webhooks:
    def __init__(
        self, db: Database, box: SecretBox, allow_private: bool, max_per_tenant: int
    ) -> None:
        self.db = db
        self.box = box
        self.allow_private = allow_private
        self.max_per_tenant = max_per_tenant

    async def create(self, body: WebhookCreate) -> WebhookCreated:
        actor = current_actor()
        assert actor is not None, "a webhook belongs to a tenant"
        try:
            await check_url(body.url, self.allow_private)
        except AddressRefused as exc:
            raise InvalidInput(
                f"the webhook URL is refused: {exc}", [FieldError("$.url", str(exc))]
            ) from None
        webhook_id = uuid.uuid4()
        secret = new_secret()
        new = NewWebhook(
            id=webhook_id,
            url=body.url,
            events=list(dict.fromkeys(body.events)),  # each type once, in the order given
            description=body.description,
            secret=self.box.seal(actor.tenant, webhook_id, secret),
            secret_key_id=self.box.key_id,
        )
        async with self.db.transaction() as conn:
            repo = WebhookRepository(conn)
            await repo.lock_tenant()
            if await repo.count() >= self.max_per_tenant:
                raise TooManyWebhooks(self.max_per_tenant)
            out = await repo.insert(new)
        return WebhookCreated(**msgspec.structs.asdict(out), secret=secret)

    async def list(self, limit: int, offset: int) -> Page[WebhookOut]:
        async with self.db.connection() as conn:
            items, total = await WebhookRepository(conn).page(limit, offset)
        return Page(items=items, total=total, limit=limit, offset=offset)

    async def get(self, webhook_id: uuid.UUID) -> WebhookOut:
        async with self.db.connection() as conn:
            found = await WebhookRepository(conn).get(webhook_id)
        if found is None:
            raise _no_webhook(webhook_id)
        return found

    async def delete(self, webhook_id: uuid.UUID) -> None:
        """Its pending deliveries and recorded attempts go with it (foreign-key cascades)."""
        async with self.db.transaction() as conn:
            if not await WebhookRepository(conn).delete(webhook_id):
                raise _no_webhook(webhook_id)

    async def attempts(
        self, webhook_id: uuid.UUID, limit: int, offset: int
    ) -> Page[DeliveryAttempt]:
        async with self.db.connection() as conn:
            repo = WebhookRepository(conn)
            if await repo.get(webhook_id) is None:
                raise _no_webhook(webhook_id)
            items, total = await repo.attempts(webhook_id, limit, offset)
        return Page(items=items, total=total, limit=limit, offset=offset)


def _no_webhook(webhook_id: uuid.UUID) -> NotFound:
    return NotFound(f"webhook '{webhook_id}' does not exist")
