"""REST ``/api/events`` (INTERFACE.md) and ``/api/calendars`` (sharing): the data CalDAV serves.

``GET /api/events?from=&to=&calendar=&type=`` lists one item per instance in the range
(recurring events expanded, the same index and expansion as calendar-query), paginated with
``limit``/``cursor``. An event's ``id`` is its object's id; ``url`` its CalDAV URL. Without
``from``/``to`` events are listed for the next 31 days and to-dos (``type=todo``) all.
``PATCH /api/events/{id}`` with ``{"partstat": "ACCEPTED"|"DECLINED"|"TENTATIVE"}`` answers an
invitation: the attendee's copy is stored, and implicit scheduling sends the iTIP REPLY.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from tau.calendar import events, ical, objects, recurrence, store
from tau.calendar.domain import Calendars, Owner
from tau.calendar.events import FieldError
from tau.calendar.ical import InvalidObject
from tau.calendar.store import Access, CalendarError
from tau.http.errors import HttpError
from tau.http.router import Response, json_response, query_arg, read_json_object

if TYPE_CHECKING:
    from tau.registry import Registry

MAX_LIMIT = 1000
MAX_RANGE = 5 * 366 * 86400


def http_error(exc: Exception) -> HttpError:
    if isinstance(exc, FieldError):
        return HttpError(400, "invalid_event", exc.message, extra={"field": exc.field})
    if isinstance(exc, InvalidObject):
        code = "uid_conflict" if exc.condition == "no-uid-conflict" else "invalid_event"
        return HttpError(409 if code == "uid_conflict" else 400, code, exc.message)
    if isinstance(exc, CalendarError):
        return HttpError(exc.status, exc.code.split(":")[0].replace("-", "_"), exc.message)
    raise exc


def _url(access: Access, name: str) -> str:
    return f"/dav/calendars/{quote(access.calendar.owner, safe='@')}/{quote(access.name)}/{quote(name)}"


def _locate(txn: Any, viewer_id: int, object_id: int) -> tuple[Access, objects.ObjectRow] | None:
    row = objects.by_id(txn, object_id)
    if row is None:
        return None
    cal = store.by_id(txn, row.calendar_id)
    if cal is None or cal.kind != "calendar":
        return None
    access = store.access(txn, viewer_id, cal.user_id, cal.name)
    return None if access is None else (access, row)


class EventsApi:
    def __init__(self, registry: Registry, cals: Calendars) -> None:
        self.registry, self.cals = registry, cals

    @staticmethod
    def _me(request: Any) -> Owner:
        return Owner(request.user.id, request.user.address.lower())

    async def create(self, request: Any) -> Response:
        body = await read_json_object(request)
        calendar = body.get("calendar")
        if calendar is not None and not isinstance(calendar, str):
            raise HttpError(400, "invalid_event", "calendar must be a calendar name", extra={"field": "calendar"})
        flows = self.registry.flows if self.registry.serving("flows") else None
        if body.get("conference") is True and flows is not None:  # Event → call (issue 9, tau.flows)
            await flows.conference(request.user, body)
        try:
            cal, row = await self.cals.create_event(self._me(request), body, calendar)
        except (FieldError, InvalidObject, CalendarError) as exc:
            raise http_error(exc)
        access = Access(cal, cal.name, True, True)
        out = self._describe(access, row)
        return json_response(out, 201, {"Location": f"/api/events/{row.id}"})

    def _describe(self, access: Access, row: objects.ObjectRow) -> dict[str, Any]:
        parsed = ical.parse_calendar(row.data or "")
        comps = [c for c in parsed.subcomponents if c.name in recurrence.TIMED]
        master, overrides = recurrence.master_and_overrides(comps)
        comp = master if master is not None else next(iter(overrides.values()))
        inst = recurrence._single(comp) or recurrence.Instance(0, 0, False, "", comp)
        out = events.item(row.id, access.name, inst, False)
        out.update({"uid": row.uid, "url": _url(access, row.name), "etag": row.etag})
        return out

    async def _find(self, request: Any, event_id: str) -> tuple[Access, objects.ObjectRow]:
        if not event_id.isdigit() or len(event_id) > 18:
            raise HttpError(404, "not_found", "no such event")
        found = await self.cals.run("cal_locate", _locate, request.user.id, int(event_id), readonly=True)
        if found is None:
            raise HttpError(404, "not_found", "no such event")
        return found

    async def get(self, request: Any, id: str) -> Response:
        access, row = await self._find(request, id)
        return json_response(self._describe(access, row))

    async def patch(self, request: Any, id: str) -> Response:
        body = await read_json_object(request)
        access, row = await self._find(request, id)
        if not access.writable:
            raise HttpError(403, "forbidden", "read-only calendar")
        try:
            if "partstat" in body:  # an invitation answered (iTIP REPLY through implicit scheduling)
                text = events.answer(row.data or "", self._me(request).address, body["partstat"], self.cals.now())
            else:
                text = events.patch(row.data or "", body, self.cals.now())
            new, _, _ = await self.cals.put_object(self._me(request), access.calendar, row.name, text, if_etag=row.etag)
        except (FieldError, InvalidObject, CalendarError) as exc:
            raise http_error(exc)
        return json_response(self._describe(access, new))

    async def delete(self, request: Any, id: str) -> Response:
        access, row = await self._find(request, id)
        if not access.writable:
            raise HttpError(403, "forbidden", "read-only calendar")
        await self.cals.delete_object(self._me(request), access.calendar, row.name)
        return Response(b"", 204)

    async def list(self, request: Any) -> Response:
        me = self._me(request)
        kind = query_arg(request, "type") or "event"
        if kind not in ("event", "todo"):
            raise HttpError(400, "invalid_query", "type is event or todo")
        component = "VTODO" if kind == "todo" else "VEVENT"
        start, end = self._range(request, kind == "todo")
        limit = _int(query_arg(request, "limit"), 100, "limit")
        offset = _int(query_arg(request, "cursor"), 0, "cursor")
        if not 1 <= limit <= MAX_LIMIT:
            raise HttpError(400, "invalid_query", f"limit must be 1..{MAX_LIMIT}")
        name = query_arg(request, "calendar")
        accesses = [a for a in await self.cals.home(me)
                    if a.calendar.kind == "calendar" and component in a.calendar.components and
                    (name is None or a.name == name)]
        if name is not None and not accesses:
            raise HttpError(404, "calendar_not_found", f"no calendar named {name}")
        by_id = {a.calendar.id: a for a in accesses}
        found = await self.cals.instances([a.calendar for a in accesses], start, end, component)
        page = found[offset:offset + limit]
        items = []
        for cal, row, inst in page:
            items.append(events.item(row.id, by_id[cal.id].name, inst, bool(inst.recurrence_id)))
        more = offset + limit < len(found)
        return json_response({"items": items, "next_cursor": str(offset + limit) if more else None})

    def _range(self, request: Any, todo: bool) -> tuple[int, int]:
        raw_from, raw_to = query_arg(request, "from"), query_arg(request, "to")
        try:
            start = _epoch(events.parse_time(raw_from, "from")) if raw_from else None
            end = _epoch(events.parse_time(raw_to, "to")) if raw_to else None
        except FieldError as exc:
            raise HttpError(400, "invalid_range", exc.message)
        if todo and start is None and end is None:
            return recurrence.MIN_TS, recurrence.MAX_TS
        if start is None:
            start = int(self.cals.now()) if end is None else end - 31 * 86400
        if end is None:
            end = start + 31 * 86400
        if end <= start or end - start > MAX_RANGE:
            raise HttpError(400, "invalid_range", "to must be after from, and the range at most 5 years")
        return start, end


def _epoch(value: Any) -> int:
    return recurrence.epoch(value)


def _int(raw: str | None, default: int, name: str) -> int:
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 9:
        raise HttpError(400, "invalid_query", f"{name} must be a non-negative integer")
    return int(raw)


class CalendarsApi:
    """``GET /api/calendars``; ``PUT|DELETE /api/calendars/{name}/shares/{user}`` (sharing)."""

    def __init__(self, cals: Calendars) -> None:
        self.cals = cals

    async def list(self, request: Any) -> Response:
        me = Owner(request.user.id, request.user.address.lower())
        out = []
        for a in await self.cals.home(me):
            if a.calendar.kind != "calendar":
                continue
            item = {"name": a.name, "display_name": a.calendar.display_name, "owner": a.calendar.owner,
                    "components": list(a.calendar.components), "writable": a.writable,
                    "url": f"/dav/calendars/{me.address}/{quote(a.name)}/"}
            if a.owned:
                item["shares"] = [{"user": u, "permission": p}
                                  for u, p in await self.cals.run("cal_shares", store.shares_of, a.calendar.id)]
            out.append(item)
        return json_response({"items": out, "next_cursor": None})

    async def share(self, request: Any, name: str, user: str) -> Response:
        body = await read_json_object(request)
        permission = body.get("permission", "read")
        try:
            alias = await self.cals.run("cal_share", store.share, request.user.id, name, user, permission)
        except CalendarError as exc:
            raise http_error(exc)
        return json_response({"calendar": name, "user": user.lower(), "permission": permission,
                              "name": alias, "url": f"/dav/calendars/{user.lower()}/{quote(alias)}/"})

    async def unshare(self, request: Any, name: str, user: str) -> Response:
        if not await self.cals.run("cal_unshare", store.unshare, request.user.id, name, user):
            raise HttpError(404, "not_found", "no such share")
        return Response(b"", 204)


def register(registry: Registry, http: Any, cals: Calendars) -> None:
    api = EventsApi(registry, cals)
    http.route("POST", "/api/events", api.create, scope="calendar")
    http.route("GET", "/api/events", api.list, scope="calendar")
    http.route("GET", "/api/events/{id}", api.get, scope="calendar")
    http.route("PATCH", "/api/events/{id}", api.patch, scope="calendar")
    http.route("DELETE", "/api/events/{id}", api.delete, scope="calendar")
    calendars = CalendarsApi(cals)
    http.route("GET", "/api/calendars", calendars.list, scope="calendar")
    http.route("PUT", "/api/calendars/{name}/shares/{user}", calendars.share, scope="calendar")
    http.route("DELETE", "/api/calendars/{name}/shares/{user}", calendars.unshare, scope="calendar")
