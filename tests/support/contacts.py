"""Test support for TauContacts: an in-process site with the HTTP core, TauCalendar and
TauContacts (driven by ``FakeHttpClient``), and vCard builders. Used by tests/contacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.calendars import ALICE, BOB, CAROL, PASSWORD, Cal
from tests.support.harness import make_registry

__all__ = ["ALICE", "BOB", "CAROL", "PASSWORD", "Book", "make_book", "vcard3", "vcard4"]
CARD_NS = "urn:ietf:params:xml:ns:carddav"


def vcard3(uid: str, fn: str, email: str = "", tel: str = "", extra: str = "") -> str:
    lines = ["BEGIN:VCARD", "VERSION:3.0", f"UID:{uid}", f"FN:{fn}", f"N:{fn};;;;"]
    if email:
        lines.append(f"EMAIL;TYPE=INTERNET,WORK:{email}")
    if tel:
        lines.append(f"TEL;TYPE=CELL:{tel}")
    lines += [x for x in extra.split("\n") if x]
    lines.append("END:VCARD")
    return "\r\n".join(lines) + "\r\n"


def vcard4(uid: str, fn: str, email: str = "", tel: str = "", extra: str = "") -> str:
    lines = ["BEGIN:VCARD", "VERSION:4.0", f"UID:urn:uuid:{uid}", f"FN:{fn}"]
    if email:
        lines.append(f"EMAIL;TYPE=home:{email}")
    if tel:
        lines.append(f"TEL;VALUE=uri;TYPE=cell:tel:{tel}")
    lines += [x for x in extra.split("\n") if x]
    lines.append("END:VCARD")
    return "\r\n".join(lines) + "\r\n"


class Book(Cal):
    """``Cal``'s site (HTTP core, TauCalendar, alice/bob/carol) plus TauContacts."""

    def __init__(self, registry: Any) -> None:
        from tau.calendar import service as calendar_service
        from tau.contacts import service as contacts_service
        from tau.files import service as files_service
        from tau.http import service as http_service
        from tau.mail import api_service
        from tests.support.calendars import Host
        from tests.support.harness import add_user
        from tests.support.http import FakeHttpClient

        self.registry = registry
        host = Host(registry)
        http_service.install(registry, host)
        calendar_service.install(registry, host)
        contacts_service.install(registry, host)
        files_service.install(registry, host)
        api_service.install(registry, host)
        self.site = host.http.site
        self.client = FakeHttpClient(self.site)
        self.alice = add_user(registry, ALICE, PASSWORD)
        self.bob = add_user(registry, BOB, PASSWORD)
        self.carol = add_user(registry, CAROL, PASSWORD)
        self.cals = registry.calendars
        self.contacts = registry.contacts

    def scoped(self, method: str, path: str, scope: str, user: str = ALICE) -> Any:
        token = str(self.registry.tokens.issue(user, scope=scope))
        return self.client.request(method, path, token=token)

    def card(self, path: str, user: str = ALICE) -> str:
        return path if path.startswith("/") else f"/dav/addressbooks/{user}/{path}"

    def dav(self, method: str, path: str, body: bytes | str = b"", user: str = ALICE,
            headers: dict[str, str] | None = None) -> Any:
        return super().dav(method, self.card(path, user), body, user, headers)

    def put(self, path: str, text: str, user: str = ALICE, **headers: str) -> Any:
        return self.dav("PUT", path, text, user, {"Content-Type": "text/vcard; charset=utf-8", **headers})


def make_book(folder: Path, db_url: str) -> Book:
    registry = make_registry(folder, db_url, limits={"requests_per_minute_ip": "0", "requests_per_hour_user": "0"})
    return Book(registry)
