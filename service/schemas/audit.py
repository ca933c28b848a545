"""The audit trail on the wire: one entry per change, and the page `GET /audit` returns."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from service.schemas.base import ApiStruct, Page

Summary = Annotated[
    dict[str, Any] | None,
    msgspec.Meta(
        description="The named fields the change touched (for a change, only those that "
        "changed); none before a create or after a delete. Never settings, artifacts or data."
    ),
]


class AuditEntry(ApiStruct):
    """One change, written in the same transaction as the change itself.

    A list's entries hold the columns `select` names (all by default), so every field is
    optional here.
    """

    id: int | msgspec.UnsetType = msgspec.UNSET
    at: datetime | msgspec.UnsetType = msgspec.UNSET
    tenant: str | msgspec.UnsetType = msgspec.UNSET
    actor: (
        Annotated[
            str,
            msgspec.Meta(
                description="The `sub` of the token that made the change (for what a job "
                "does: its submitter's), or `system`",
                examples=["alice"],
            ),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    action: (
        Annotated[
            str,
            msgspec.Meta(
                description="What happened: `model.created`, `model.updated`, "
                "`model.deleted`, `version.created`, `version.activated`, `job.created`, "
                "`job.cancelled`, `dataset.created`, `dataset.updated`, `dataset.rows_added`, "
                "`dataset.rows_deleted`, `dataset.deleted`, `webhook.created`, `webhook.deleted`",
                examples=["model.created"],
            ),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    resource: (
        Annotated[
            str,
            msgspec.Meta(
                description="What it happened to: `models/{name}`, "
                "`models/{name}/versions/{version}`, `jobs/{id}`, `datasets/{name}` or "
                "`webhooks/{id}`",
                examples=["models/iris"],
            ),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    request_id: (
        Annotated[
            str | None,
            msgspec.Meta(description="The `X-Request-ID` of the request that made the change"),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    before: Summary | msgspec.UnsetType = msgspec.UNSET
    after: Summary | msgspec.UnsetType = msgspec.UNSET


class AuditPage(Page[AuditEntry]):
    """The tenant's audit entries, newest first unless `order_by` says otherwise."""
