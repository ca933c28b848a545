"""A tenant's webhooks: `/webhooks[/{webhook_id}]` and the delivery attempts of one."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from service.http import examples
from service.http.operation import Operation, Param
from service.http.params import PAGING, multi_params, paging, path_uuid
from service.http.responses import json_response
from service.http.state import services
from service.schemas.webhooks import (
    EVENT_TYPES,
    DeliveryPage,
    WebhookCreate,
    WebhookCreated,
    WebhookOut,
    WebhookPage,
)

WEBHOOK_ID = Param(
    name="webhook_id",
    where="path",
    schema={"type": "string", "format": "uuid"},
    description="Webhook id",
)


async def create_webhook(request: Request, body: WebhookCreate) -> Response:
    created = await services(request).webhooks.create(body)
    return json_response(created, 201, {"Location": f"/webhooks/{created.id}"})


async def list_webhooks(request: Request) -> Response:
    limit, offset = paging(multi_params(request))
    return json_response(await services(request).webhooks.list(limit, offset))


async def get_webhook(request: Request) -> Response:
    webhook_id = path_uuid(request, "webhook_id", "webhook")
    return json_response(await services(request).webhooks.get(webhook_id))


async def delete_webhook(request: Request) -> Response:
    await services(request).webhooks.delete(path_uuid(request, "webhook_id", "webhook"))
    return Response(status_code=204)


async def list_deliveries(request: Request) -> Response:
    webhook_id = path_uuid(request, "webhook_id", "webhook")
    limit, offset = paging(multi_params(request))
    return json_response(await services(request).webhooks.attempts(webhook_id, limit, offset))


OPERATIONS = [
    Operation(
        operation_id="create_webhook",
        method="POST",
        path="/webhooks",
        endpoint=create_webhook,
        scope="models:write",
        summary="Register a webhook",
        tag="webhooks",
        body=WebhookCreate,
        example=examples.CREATE_WEBHOOK,
        response=WebhookCreated,
        status=201,
        errors=(409, 422),
        description="Events of the caller's tenant whose type is in `events` are POSTed to "
        "`url`, signed per Standard Webhooks with the `secret` this answer carries, and shown "
        f"nowhere else. Event types: {', '.join(f'`{t}`' for t in EVENT_TYPES)}. The URL "
        "must resolve to public addresses only (loopback, private, link-local and metadata "
        "addresses are a 422 at `$.url`) unless `webhooks.allow_private` is set. A tenant "
        "holding `webhooks.max_webhooks_per_tenant` webhooks gets a 409 until it deletes one.",
    ),
    Operation(
        operation_id="list_webhooks",
        method="GET",
        path="/webhooks",
        endpoint=list_webhooks,
        scope="models:read",
        summary="List the tenant's webhooks, oldest first (no secrets)",
        tag="webhooks",
        response=WebhookPage,
        params=PAGING,
    ),
    Operation(
        operation_id="get_webhook",
        method="GET",
        path="/webhooks/{webhook_id}",
        endpoint=get_webhook,
        scope="models:read",
        summary="Get one webhook (no secret)",
        tag="webhooks",
        response=WebhookOut,
        params=(WEBHOOK_ID,),
        errors=(404,),
    ),
    Operation(
        operation_id="delete_webhook",
        method="DELETE",
        path="/webhooks/{webhook_id}",
        endpoint=delete_webhook,
        scope="models:write",
        summary="Delete a webhook and the deliveries it is still owed",
        tag="webhooks",
        status=204,
        params=(WEBHOOK_ID,),
        errors=(404,),
    ),
    Operation(
        operation_id="list_webhook_deliveries",
        method="GET",
        path="/webhooks/{webhook_id}/deliveries",
        endpoint=list_deliveries,
        scope="models:read",
        summary="List a webhook's delivery attempts, newest first",
        tag="webhooks",
        response=DeliveryPage,
        params=(WEBHOOK_ID, *PAGING),
        errors=(404,),
        description="One item per attempt: the event's id and type, the receiver's status "
        "code or the error, when it was made and when the next one is due, and the status of "
        "the event's delivery now. Events not yet attempted are not listed.",
    ),
]
