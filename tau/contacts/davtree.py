"""The CardDAV tree (RFC 6352 §5-§7) as DAV resources (``tau.dav.resource``) under ``/dav/addressbooks/``.

``/dav/addressbooks/USER/`` is both the user's principal and their address-book home (as in
Radicale), holding "contacts", "collected", books made with extended MKCOL and books shared
with USER; ``/dav/addressbooks/USER/BOOK/NAME.vcf`` is one vCard. Another user's home is 403;
a book of theirs is 404 unless it was shared with the caller (existence does not leak), and a
read-only share refuses writes with 403 ``DAV:need-privileges``.
"""

from __future__ import annotations

from typing import Any

from tau.contacts import store
from tau.contacts.cardstore import CardRow
from tau.contacts.domain import Contacts, Owner
from tau.contacts.store import Access, ContactsError
from tau.contacts.vcard import MAX_RESOURCE_SIZE, InvalidCard
from tau.dav.collections import Fixed, MemberResource, SizedBody, StoredCollection, SyncTokens
from tau.dav.errors import DavError
from tau.dav.resource import Collection, DavProvider, Resolved, Resource, SyncResult

NS_CARD = "urn:ietf:params:xml:ns:carddav"
CARD = "{" + NS_CARD + "}"
PREFIX = "/dav/addressbooks"
TOKEN_PREFIX = "urn:tau:contacts:sync:"
TOKENS = SyncTokens(TOKEN_PREFIX)
READ_ONLY = DavError(403, "read-only address book", "<D:need-privileges/>")


def dav_error(exc: InvalidCard | ContactsError) -> DavError:
    if isinstance(exc, InvalidCard):
        return DavError(exc.status, exc.message, f'<x:{exc.condition} xmlns:x="{NS_CARD}"/>')
    return DavError(exc.status, exc.message)


class CardResource(MemberResource):
    """One address object resource (RFC 6352 §5.1)."""

    row: CardRow
    access: Access | None

    def __init__(self, row: CardRow, access: Access | None = None) -> None:
        super().__init__(row, access)

    def content_type(self) -> str | None:
        return "text/vcard; charset=utf-8"


class AddressBook(StoredCollection):
    """An address book collection (RFC 6352 §5.2) as one user sees it."""

    sync_limit_supported = True

    def __init__(self, contacts: Contacts, user: Owner, access: Access) -> None:
        self.contacts, self.user, self.access = contacts, user, access
        self.book = self.stored = access.book
        self.writable = access.writable
        self.resource_types = (CARD + "addressbook",)
        self._props: dict[str, str] | None = None

    async def members(self) -> list[Resource]:
        return [CardResource(r, self.access) for r in await self.contacts.members(self.book)]

    async def member(self, name: str) -> Resource | None:
        row = await self.contacts.get_card(self.book, name)
        return None if row is None else CardResource(row, self.access)

    async def put_member(self, name: str, body: Any, content_type: str | None,
                         existing: Resource | None) -> Resource:
        if not self.writable:
            await body.abort()
            raise READ_ONLY
        ctype = (content_type or "text/vcard").split(";")[0].strip().lower()
        if ctype not in ("text/vcard", "text/x-vcard", "text/directory", "application/octet-stream",
                         "text/plain", ""):
            await body.abort()
            raise dav_error(InvalidCard("supported-address-data", f"{ctype} is not text/vcard"))
        data = await body.finish()
        try:
            row, _ = await self.contacts.put_card(self.book, name, data)
        except (InvalidCard, ContactsError) as exc:
            raise dav_error(exc)
        return CardResource(row, self.access)

    async def delete_member(self, member: Resource) -> None:
        if not self.writable:
            raise READ_ONLY
        if not isinstance(member, CardResource):
            raise DavError(403, "cannot delete this")
        await self.contacts.delete_card(self.book, member.name)

    async def transfer(self, source: Resource, name: str, move: bool, depth_infinity: bool,
                       replace: Resource | None) -> Resource:
        """COPY/MOVE of a card between address books (clients move contacts this way)."""
        if not self.writable or not isinstance(source, CardResource) or source.row.data is None:
            raise READ_ONLY if not self.writable else DavError(403, "only vCards can be copied here")
        if move and not source.writable:
            raise READ_ONLY
        if replace is not None:
            await self.contacts.delete_card(self.book, replace.name)
        try:
            row, _ = await self.contacts.put_card(self.book, name, source.row.data)
        except (InvalidCard, ContactsError) as exc:
            raise dav_error(exc)
        if move and source.access is not None:
            await self.contacts.delete_card(source.access.book, source.name)
        return CardResource(row, self.access)

    def sync_token(self) -> str | None:
        return TOKENS.token(self.book.id, self.book.sync_seq)

    async def sync_changes(self, token: str | None, infinite: bool, limit: int | None = None) -> SyncResult:
        since = 0 if token is None else TOKENS.parse(token, self.book.id, self.book.sync_seq)
        state = await self.contacts.sync(self.book, since, limit)
        return TOKENS.result(self.book.id, state, lambda row: CardResource(row, self.access))

    async def dead_properties(self) -> dict[str, str]:
        if self._props is None:
            self._props = await self.contacts.run("ab_props", store.props, self.book.id, readonly=True)
        return self._props

    async def patch_properties(self, set_props: dict[str, str], remove: list[str]) -> None:
        from tau.contacts.bookprops import column_updates

        if not self.writable:
            raise READ_ONLY
        columns, dead_set, dead_remove = column_updates(set_props, remove)

        def txn_fn(txn: Any) -> None:
            store.update(txn, self.book.id, columns.get("display_name"), columns.get("description"))
            store.set_props(txn, self.book.id, dead_set, dead_remove)

        await self.contacts.run("ab_proppatch", txn_fn)
        self._props = None


class Home(Collection):
    """``/dav/addressbooks/USER/``: the principal and address-book home (RFC 6352 §7.1.1)."""

    writable = True
    resource_types = ("{DAV:}principal",)

    def __init__(self, contacts: Contacts, user: Owner) -> None:
        self.contacts, self.user = contacts, user

    @property
    def name(self) -> str:
        return self.user.address

    def display_name(self) -> str | None:
        return self.user.address

    async def members(self) -> list[Resource]:
        return [AddressBook(self.contacts, self.user, a) for a in await self.contacts.home(self.user)]

    async def member(self, name: str) -> Resource | None:
        return next((m for m in await self.members() if m.name == name), None)

    async def create_collection(self, name: str, body: Any = None) -> Resource:
        """Extended MKCOL (RFC 5689, RFC 6352 §6.3.1) with a CARDDAV:addressbook resource type."""
        from tau.contacts.bookprops import mkcol_props

        display, description = mkcol_props(body)
        try:
            book = await self.contacts.create_book(self.user, name, display, description)
        except ContactsError as exc:
            raise DavError(exc.status, exc.message, "<D:resource-must-be-null/>" if exc.status == 405 else None)
        return AddressBook(self.contacts, self.user, Access(book, book.name, True, True))

    async def delete_member(self, member: Resource) -> None:
        if not isinstance(member, AddressBook):
            raise DavError(403, "this collection cannot be deleted")
        try:
            await self.contacts.delete_book(self.user, member.access)
        except ContactsError as exc:
            raise dav_error(exc)


class ContactsProvider(DavProvider):
    """Resolves ``/dav/addressbooks/...`` for the authenticated user."""

    dav_classes = ["access-control", "addressbook", "extended-mkcol"]

    def __init__(self, contacts: Contacts) -> None:
        self.contacts = contacts

    def lock_owner(self, key: tuple[str, ...]) -> str | None:
        return key[0] if key else None

    def principal_url(self, user: Any) -> str:
        return f"{PREFIX}/{user.address}/"

    def supported_reports(self, resource: Resource) -> list[str]:
        if isinstance(resource, AddressBook):
            return [CARD + "addressbook-query", CARD + "addressbook-multiget", "{DAV:}sync-collection"]
        if isinstance(resource, CardResource):
            return [CARD + "addressbook-multiget"]
        return []

    async def resolve(self, user: Any, segments: list[str]) -> Resolved:
        me = Owner(user.id, user.address.lower())
        if not segments:
            return Resolved([], Fixed("", [Home(self.contacts, me)]), None, ("",))
        owner = segments[0].lower()
        if len(segments) == 1:
            if owner != me.address:
                raise DavError(403, "not your address book home")
            return Resolved(segments, Home(self.contacts, me), None, (me.address,))
        if len(segments) > 3:
            raise DavError(404, "no such resource")
        mine = owner == me.address
        access, row = await self.contacts.resolve(me, owner, segments[1], segments[2] if len(segments) == 3 else None)
        if access is None:
            if not mine or len(segments) > 2:
                raise DavError(404, "no such address book")
            return Resolved(segments, None, Home(self.contacts, me), (owner, segments[1]))
        canonical = (access.book.owner, access.book.name)
        book = AddressBook(self.contacts, me, access)
        if len(segments) == 2:
            return Resolved(segments, book, Home(self.contacts, me) if mine else None, canonical)
        resource = None if row is None else CardResource(row, access)
        return Resolved(segments, resource, book, canonical + (segments[2],))


class CardBody(SizedBody):
    """PUT body sink: over ``limit`` the PUT is refused with ``CARDDAV:max-resource-size``
    (RFC 6352 §6.3.2.1) without holding more."""

    def __init__(self, request: Any, length: int | None, limit: int = MAX_RESOURCE_SIZE) -> None:
        super().__init__(request, length, limit)

    def too_large(self) -> Exception:
        return dav_error(InvalidCard("max-resource-size", f"vCard over {self.limit} bytes"))
