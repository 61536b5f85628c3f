"""Collected addresses: the people a user mails, by ``POST /api/emails`` or SMTP submission, land
in their "Collected" address book unless they are known or the user opted out."""

from __future__ import annotations

from typing import Any

from tests.support.contacts import ALICE, BOB, PASSWORD, vcard3
from tests.support.smtp import Client, make_factory


def collected(book: Any, user: str = ALICE) -> list[str]:
    items = book.api("GET", "/api/contacts?addressbook=collected", user=user).json()["items"]
    return sorted(e["value"] for c in items for e in c["emails"])


def send(book: Any, to: list[str], cc: list[str] | None = None) -> None:
    r = book.api("POST", "/api/emails", {"to": to, "cc": cc or [], "subject": "hi", "text": "hello"})
    assert r.status == 202, r.body


def test_people_mailed_through_the_api_are_collected_once(book: Any) -> None:
    send(book, [BOB, "Dora@Remote.example"], cc=["eve@remote.example"])
    send(book, [BOB])
    assert collected(book) == [BOB, "dora@remote.example", "eve@remote.example"]
    url = book.api("GET", "/api/contacts?addressbook=collected&q=dora").json()["items"][0]["url"]
    assert "EMAIL:dora@remote.example" in book.dav("GET", url).body.decode()


def test_known_contacts_and_opted_out_users_are_not_collected(book: Any) -> None:
    book.put("contacts/bob.vcf", vcard3("bob", "Bob", BOB))
    send(book, [BOB])
    assert collected(book) == []
    assert book.api("GET", "/api/contacts/settings").json() == {"collect": True}
    r = book.api("PUT", "/api/contacts/settings", {"collect": False})
    assert r.status == 200 and r.json() == {"collect": False}
    send(book, ["frank@remote.example"])
    assert collected(book) == []
    assert book.api("PUT", "/api/contacts/settings", {"collect": "no"}).status == 400


def test_people_mailed_through_smtp_submission_are_collected(book: Any) -> None:
    client = Client(make_factory(book.registry, book.registry.mail_store, "submission"))
    client.submit_ready(ALICE, PASSWORD)
    body = f"From: {ALICE}\r\nTo: {BOB}\r\nSubject: hi\r\n\r\nhello\r\n".encode()
    replies = client.mail(ALICE, [BOB, "gina@remote.example"], body)
    assert replies[-1].code == 250, replies
    assert collected(book) == [BOB, "gina@remote.example"]
    assert collected(book, BOB) == []
