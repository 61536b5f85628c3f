"""``Contacts``: the address-book service every front end uses (CardDAV, REST, collected addresses).

Parsing runs in a worker thread; every write is one named transaction; after commit a
``contacts.changed`` event goes on the bus. Errors are ``ContactsError`` (store decisions) and
``InvalidCard`` (a vCard that fails an RFC 6352 precondition); the edges map them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet import defer

from tau.bus import events
from tau.contacts import cardstore, store, vcard
from tau.contacts.cardstore import CardRow
from tau.contacts.store import Access, BookRow, ContactsError
from tau.contacts.vcard import InvalidCard

if TYPE_CHECKING:
    from tau.registry import Registry

T = TypeVar("T")


@dataclass(frozen=True)
class Owner:
    """A local account as the contacts code needs it."""

    id: int
    address: str


class Contacts:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.db = registry.db
        self._ready: set[int] = set()

    def run(self, name: str, fn: Callable[..., T], *args: Any, readonly: bool = False) -> defer.Deferred[T]:
        return self.db.run(name, fn, *args, readonly=readonly)

    # -- address books --------------------------------------------------------------------------

    async def ensure_defaults(self, user: Owner) -> None:
        """"Contacts" and "Collected", created on first use (remembered per process)."""
        if user.id not in self._ready:
            await self.run("ab_defaults", store.ensure_defaults, user.id)
            self._ready.add(user.id)

    async def home(self, user: Owner) -> list[Access]:
        await self.ensure_defaults(user)
        return await self.run("ab_home", store.visible, user.id, readonly=True)

    async def resolve(self, viewer: Owner, owner_address: str, name: str,
                      member: str | None) -> tuple[Access | None, CardRow | None]:
        """An address book and (optionally) one of its cards, in one read transaction."""
        mine = owner_address.lower() == viewer.address
        if mine:
            await self.ensure_defaults(viewer)

        def txn_fn(txn: Any) -> tuple[Access | None, CardRow | None]:
            owner_id = viewer.id if mine else store.user_id(txn, owner_address)
            acc = None if owner_id is None else store.access(txn, viewer.id, owner_id, name)
            row = cardstore.get(txn, acc.book.id, member, True) if acc is not None and member else None
            return acc, row

        return await self.run("ab_resolve", txn_fn, readonly=True)

    async def book(self, user: Owner, name: str | None, write: bool = False) -> Access:
        """The user's address book by name in their home (default: "contacts"), or 404/403."""
        acc, _ = await self.resolve(user, user.address, name or store.DEFAULT, None)
        if acc is None:
            raise ContactsError(404, "addressbook_not_found", f"no address book named {name}")
        if write and not acc.writable:
            raise ContactsError(403, "forbidden", "read-only address book")
        return acc

    async def create_book(self, user: Owner, name: str, display_name: str = "", description: str = "") -> BookRow:
        return await self.run("ab_create", store.create, user.id, name, display_name, description)

    async def delete_book(self, user: Owner, acc: Access) -> None:
        if not acc.owned:
            await self.run("ab_unshare", store.drop_share, acc.book.id, user.id)
            return
        if acc.book.kind != "book":
            raise ContactsError(403, "forbidden", "the default address books cannot be deleted")
        await self.run("ab_delete", store.delete, acc.book.id)

    # -- cards ----------------------------------------------------------------------------------

    async def put_card(self, book: BookRow, name: str, data: bytes | str, if_etag: str | None = None,
                       create_only: bool = False) -> tuple[CardRow, bool]:
        """Store one vCard as sent; returns (row, created). Raises InvalidCard or ContactsError."""
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        if len(text.encode("utf-8")) > vcard.MAX_RESOURCE_SIZE:
            raise InvalidCard("max-resource-size", f"vCard over {vcard.MAX_RESOURCE_SIZE} bytes")
        card = await self.registry.run_in_thread(vcard.parse, data, name.rsplit(".", 1)[0])
        try:
            row, created = await self.run("ab_put", cardstore.put, book.id, name, card, text, if_etag, create_only)
        except ContactsError as exc:
            if exc.code.startswith("no-uid-conflict:"):
                raise InvalidCard("no-uid-conflict", exc.message)
            raise
        except Exception as exc:
            if "unique" in str(exc).lower():
                raise ContactsError(409, "conflict", "changed concurrently; try again")
            raise
        self._changed(book, name, "put")
        return row, created

    async def delete_card(self, book: BookRow, name: str, if_etag: str | None = None) -> CardRow | None:
        gone = await self.run("ab_delete_card", cardstore.delete, book.id, name, if_etag)
        if gone is not None:
            self._changed(book, name, "delete")
        return gone

    def _changed(self, book: BookRow, name: str, kind: str) -> None:
        events.publish(self.registry.bus, events.CONTACTS_CHANGED,
                       {"user": book.owner, "addressbook": book.name, "name": name, "kind": kind})

    async def members(self, book: BookRow, with_data: bool = False) -> list[CardRow]:
        return await self.run("ab_members", cardstore.members, book.id, with_data, readonly=True)

    async def get_card(self, book: BookRow, name: str) -> CardRow | None:
        return await self.run("ab_get", cardstore.get, book.id, name, True, readonly=True)

    async def multiget(self, book: BookRow, names: list[str]) -> dict[str, CardRow]:
        return await self.run("ab_multiget", cardstore.many, book.id, names, readonly=True)

    async def sync(self, book: BookRow, since: int, limit: int | None
                   ) -> tuple[int, list[CardRow], list[str], bool] | None:
        return await self.run("ab_sync", cardstore.sync_state, book.id, since, limit, readonly=True)

    async def locate(self, user: Owner, card_id: int) -> tuple[Access, CardRow] | None:
        """A card by id, with the viewer's access to its book (None: not there or not theirs)."""
        def txn_fn(txn: Any) -> tuple[Access, CardRow] | None:
            row = cardstore.by_id(txn, card_id)
            book = None if row is None else store.by_id(txn, row.book_id)
            acc = None if book is None else store.access(txn, user.id, book.user_id, book.name)
            return None if acc is None or row is None else (acc, row)

        return await self.run("ab_locate", txn_fn, readonly=True)

    async def page(self, book: BookRow, after: int, limit: int, ids: set[int] | None) -> list[CardRow]:
        return await self.run("ab_page", cardstore.page, book.id, after, limit, ids, readonly=True)

    # -- collected addresses --------------------------------------------------------------------

    async def collect(self, address: str, recipients: list[str]) -> int:
        """Add the people ``address`` mailed to their "Collected" book unless some book of theirs
        already has them or they opted out; returns how many were added."""
        wanted = list(dict.fromkeys(r.strip().lower() for r in recipients if "@" in r))[:100]
        if not wanted:
            return 0

        def txn_fn(txn: Any) -> list[str]:
            uid = store.user_id(txn, address)
            if uid is None or not store.collects(txn, uid):
                return []
            store.ensure_defaults(txn, uid)
            books = store.owned(txn, uid)
            known = cardstore.known_emails(txn, [b.id for b in books], wanted)
            target = next(b for b in books if b.kind == "collected")
            added = []
            for email in wanted:
                if email in known or email == address.lower():
                    continue
                key = "collected-" + vcard.etag_of(email).strip('"')[:24]
                text = vcard.build(key, {"name": email.split("@")[0], "emails": [email]})
                cardstore.put(txn, target.id, f"{key}.vcf", vcard.parse(text), text)
                added.append(email)
            return added

        try:
            added = await self.run("ab_collect", txn_fn)
        except Exception as exc:  # two sends raced on one address: the other one added it
            if "unique" not in str(exc).lower():
                raise
            return 0
        return len(added)

    async def settings(self, user: Owner) -> dict[str, Any]:
        return {"collect": await self.run("ab_settings", store.collects, user.id, readonly=True)}

    async def set_collect(self, user: Owner, collect: bool) -> None:
        await self.run("ab_set_collect", store.set_collect, user.id, collect)
