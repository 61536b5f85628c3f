"""REST ``/api/contacts`` and ``/api/addressbooks``: the cards CardDAV serves, as JSON.

A contact is ``{id, name, emails: [{type, value}], phones: [{type, value}], org, note, addressbook,
url}``; input also takes ``emails``/``phones`` as plain strings. Writes go to the default
address book ("contacts") unless ``addressbook`` names another one in the caller's home. A
PATCH rewrites only the vCard lines of the fields it names, so what a CardDAV client stored
(photos, addresses, its own properties) survives. Lists are ``{items, next_cursor}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from tau.contacts import search, store, vcard
from tau.contacts.cardstore import CardRow
from tau.contacts.davtree import PREFIX
from tau.contacts.domain import Contacts, Owner
from tau.contacts.store import Access, ContactsError
from tau.contacts.vcard import InvalidCard
from tau.http.errors import HttpError
from tau.http.router import Response, json_response, query_arg, read_json_object

if TYPE_CHECKING:
    from tau.registry import Registry

MAX_LIMIT = 1000
FIELDS = ("name", "emails", "phones", "org", "note")


def http_error(exc: InvalidCard | ContactsError) -> HttpError:
    if isinstance(exc, InvalidCard):
        code = "uid_conflict" if exc.condition == "no-uid-conflict" else "invalid_contact"
        return HttpError(409 if code == "uid_conflict" else 400, code, exc.message)
    return HttpError(exc.status, exc.code.split(":")[0].replace("-", "_"), exc.message)


def _me(request: Any) -> Owner:
    return Owner(request.user.id, request.user.address.lower())


def check_fields(body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in FIELDS:
        if key not in body:
            continue
        value = body[key]
        if key in ("emails", "phones"):
            if not isinstance(value, list) or len(value) > 100 or not all(
                    isinstance(v, str) or (isinstance(v, dict) and isinstance(v.get("value"), str)
                                           and isinstance(v.get("type", ""), (str, type(None)))) for v in value):
                raise HttpError(400, "invalid_contact", f"{key} is a list of strings or {{type, value}}",
                                extra={"field": key})
        elif value is not None and (not isinstance(value, str) or len(value) > 10000):
            raise HttpError(400, "invalid_contact", f"{key} must be a string", extra={"field": key})
        out[key] = value
    return out


def describe(access: Access, row: CardRow) -> dict[str, Any]:
    try:
        fields = vcard.view(vcard.parse(row.data or "", row.uid))
    except InvalidCard:
        fields = {"name": row.fn, "emails": [], "phones": [], "org": None, "note": None, "photo": False}
    return {"id": str(row.id), **fields, "uid": row.uid, "addressbook": access.name,
            "url": f"{PREFIX}/{quote(access.book.owner, safe='@')}/{quote(access.name)}/{quote(row.name)}",
            "etag": row.etag}


class ContactsApi:
    def __init__(self, contacts: Contacts) -> None:
        self.contacts = contacts

    async def _book(self, request: Any, name: Any, write: bool = False) -> Access:
        if name is not None and not isinstance(name, str):
            raise HttpError(400, "invalid_contact", "addressbook must be a name", extra={"field": "addressbook"})
        try:
            return await self.contacts.book(_me(request), name, write)
        except ContactsError as exc:
            raise http_error(exc)

    async def _card(self, request: Any, id: str, write: bool = False) -> tuple[Access, CardRow]:
        found = await self.contacts.locate(_me(request), int(id)) if id.isdigit() and len(id) < 19 else None
        if found is None:
            raise HttpError(404, "not_found", "no such contact")
        if write and not found[0].writable:
            raise HttpError(403, "forbidden", "read-only address book")
        return found

    async def list(self, request: Any) -> Response:
        access = await self._book(request, query_arg(request, "addressbook"))
        limit_arg, cursor = query_arg(request, "limit", "100") or "100", query_arg(request, "cursor", "0") or "0"
        if not limit_arg.isdigit() or not cursor.isdigit() or len(cursor) > 18:
            raise HttpError(400, "invalid_argument", "limit and cursor are numbers")
        limit = max(1, min(int(limit_arg), MAX_LIMIT))
        q = (query_arg(request, "q") or "").strip()
        ids = None
        if q:
            ids = {r.id for r in await search.query(self.contacts, access.book, search.text_search(q[:200]))}
        rows = await self.contacts.page(access.book, int(cursor), limit + 1, ids)
        more = len(rows) > limit
        rows = rows[:limit]
        return json_response({"items": [describe(access, r) for r in rows],
                              "next_cursor": str(rows[-1].id) if more else None})

    async def get(self, request: Any, id: str) -> Response:
        return json_response(describe(*await self._card(request, id)))

    async def create(self, request: Any) -> Response:
        body = await read_json_object(request)
        fields = check_fields(body)
        access = await self._book(request, body.get("addressbook"), write=True)
        import uuid

        uid = str(uuid.uuid4())
        try:
            row, _ = await self.contacts.put_card(access.book, f"{uid}.vcf", vcard.build(uid, fields),
                                                  create_only=True)
        except (InvalidCard, ContactsError) as exc:
            raise http_error(exc)
        return json_response(describe(access, row), 201, {"Location": f"/api/contacts/{row.id}"})

    async def patch(self, request: Any, id: str) -> Response:
        body = await read_json_object(request)
        fields = check_fields(body)
        access, row = await self._card(request, id, write=True)
        text = vcard.patch(row.data or "", fields) if fields else (row.data or "")
        try:
            new, _ = await self.contacts.put_card(access.book, row.name, text, if_etag=row.etag)
        except (InvalidCard, ContactsError) as exc:
            raise http_error(exc)
        return json_response(describe(access, new))

    async def delete(self, request: Any, id: str) -> Response:
        access, row = await self._card(request, id, write=True)
        await self.contacts.delete_card(access.book, row.name)
        return Response(b"", 204)

    async def get_settings(self, request: Any) -> Response:
        return json_response(await self.contacts.settings(_me(request)))

    async def put_settings(self, request: Any) -> Response:
        body = await read_json_object(request)
        if not isinstance(body.get("collect"), bool):
            raise HttpError(400, "invalid_argument", "collect must be true or false", extra={"field": "collect"})
        await self.contacts.set_collect(_me(request), body["collect"])
        return json_response(await self.contacts.settings(_me(request)))


class AddressBooksApi:
    def __init__(self, contacts: Contacts) -> None:
        self.contacts = contacts

    async def list(self, request: Any) -> Response:
        me = _me(request)
        out = []
        for a in await self.contacts.home(me):
            item: dict[str, Any] = {"name": a.name, "display_name": a.book.display_name, "owner": a.book.owner,
                                    "kind": a.book.kind, "writable": a.writable,
                                    "url": f"{PREFIX}/{me.address}/{quote(a.name)}/"}
            if a.owned:
                item["shares"] = [{"user": u, "permission": p}
                                  for u, p in await self.contacts.run("ab_shares", store.shares_of, a.book.id)]
            out.append(item)
        return json_response({"items": out, "next_cursor": None})

    async def share(self, request: Any, name: str, user: str) -> Response:
        body = await read_json_object(request)
        permission = body.get("permission", "read")
        await self.contacts.ensure_defaults(_me(request))
        try:
            alias = await self.contacts.run("ab_share", store.share, request.user.id, name, user, permission)
        except ContactsError as exc:
            raise http_error(exc)
        return json_response({"addressbook": name, "user": user.lower(), "permission": permission, "name": alias,
                              "url": f"{PREFIX}/{user.lower()}/{quote(alias)}/"})

    async def unshare(self, request: Any, name: str, user: str) -> Response:
        if not await self.contacts.run("ab_unshare", store.unshare, request.user.id, name, user):
            raise HttpError(404, "not_found", "no such share")
        return Response(b"", 204)


def register(registry: Registry, http: Any, contacts: Contacts) -> None:
    api = ContactsApi(contacts)
    http.route("GET", "/api/contacts/settings", api.get_settings, scope="contacts")
    http.route("PUT", "/api/contacts/settings", api.put_settings, scope="contacts")
    http.route("GET", "/api/contacts", api.list, scope="contacts")
    http.route("POST", "/api/contacts", api.create, scope="contacts")
    http.route("GET", "/api/contacts/{id}", api.get, scope="contacts")
    http.route("PATCH", "/api/contacts/{id}", api.patch, scope="contacts")
    http.route("DELETE", "/api/contacts/{id}", api.delete, scope="contacts")
    books = AddressBooksApi(contacts)
    http.route("GET", "/api/addressbooks", books.list, scope="contacts")
    http.route("PUT", "/api/addressbooks/{name}/shares/{user}", books.share, scope="contacts")
    http.route("DELETE", "/api/addressbooks/{name}/shares/{user}", books.unshare, scope="contacts")
