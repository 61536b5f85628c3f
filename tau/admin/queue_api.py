"""``/api/admin/queue``: the outbound queue for admins (what ``tau queue`` does on the command line).

``GET /api/admin/queue[?status=queued|held|sending|sent|failed]`` lists rows with the counts per
state; ``GET /api/admin/queue/{id}`` shows one with its per-recipient state; ``POST .../{id}/retry``
makes it due now, ``POST /api/admin/queue/retry`` every queued row; ``POST .../{id}/hold`` keeps
it from delivery until ``POST .../{id}/release``; ``DELETE .../{id}`` removes it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from tau.admin.args import limit_arg
from tau.http.errors import HttpError
from tau.http.router import Response, json_response, query_arg
from tau.mail.store import queue

if TYPE_CHECKING:
    from tau.registry import Registry

Run = Callable[..., Awaitable[Any]]
Routes = list[tuple[str, str, Callable[..., Awaitable[Response]]]]


def _rows(txn: Any, status: str | None, limit: int) -> list[dict[str, Any]]:
    return [r.to_json() for r in queue.list_queue(txn, status or None, limit)]


def _one(txn: Any, queue_id: int) -> dict[str, Any] | None:
    row = queue.get(txn, queue_id)
    return row.to_json() if row is not None else None


def _queue_id(text: str) -> int:
    if not text.isdigit():
        raise HttpError(404, "not_found", "no such queue entry")
    return int(text)


def queue_routes(registry: Registry, run: Run, require_admin: Callable[[Any], Any]) -> Routes:
    async def list_queue(request: Any) -> Response:
        require_admin(request)
        limit = limit_arg(request, 1000)
        status = query_arg(request, "status") or None
        if status is not None and status not in queue.STATES:
            raise HttpError(400, "invalid_status", f"status is one of {', '.join(queue.STATES)}")
        items = await run("admin_queue", _rows, status, limit, readonly=True)
        counts = await run("admin_queue_counts", queue.counts, readonly=True)
        return json_response({"items": items, "counts": counts, "next_cursor": None})

    async def show(request: Any, queue_id: str) -> Response:
        require_admin(request)
        item = await run("admin_queue_show", _one, _queue_id(queue_id), readonly=True)
        if item is None:
            raise HttpError(404, "not_found", "no such queue entry")
        return json_response(item)

    def action(name: str, fn: Callable[[Any, int], bool], state: str, missing: str) -> Any:
        async def handler(request: Any, queue_id: str) -> Response:
            require_admin(request)
            if not await run(f"admin_queue_{name}", fn, _queue_id(queue_id)):
                raise HttpError(404, "not_found", missing)
            return json_response({"id": int(queue_id), "state": state, "status": "queued"})
        return handler

    async def retry_all(request: Any) -> Response:
        require_admin(request)
        return json_response({"retried": await run("admin_queue_retry_all", queue.retry_all)})

    async def delete_queued(request: Any, queue_id: str) -> Response:
        require_admin(request)
        released = await run("admin_queue_delete", queue.delete, _queue_id(queue_id))
        if released is None:
            raise HttpError(404, "not_found", "no such queue entry")
        if released:  # unreferenced now: let the mail store collect the blob
            await registry.mail_store.sweep_blobs()
        return Response(b"", 204, "text/plain")

    return [("GET", "/api/admin/queue", list_queue),
            ("POST", "/api/admin/queue/retry", retry_all),
            ("GET", "/api/admin/queue/{queue_id}", show),
            ("POST", "/api/admin/queue/{queue_id}/retry",
             action("retry", queue.retry, "queued", "no queued, held or failed message with this id")),
            ("POST", "/api/admin/queue/{queue_id}/hold",
             action("hold", queue.hold, "held", "no queued message with this id")),
            ("POST", "/api/admin/queue/{queue_id}/release",
             action("release", queue.unhold, "queued", "no held message with this id")),
            ("DELETE", "/api/admin/queue/{queue_id}", delete_queued)]

