"""REST ``/api/contacts`` and ``/api/addressbooks`` on the same cards CardDAV serves, on SQLite and
PostgreSQL: CRUD, pagination, search, scopes and sharing."""

from __future__ import annotations

from typing import Any

from tests.support.contacts import ALICE, BOB, CAROL, vcard3


def add(book: Any, **fields: Any) -> dict[str, Any]:
    r = book.api("POST", "/api/contacts", fields)
    assert r.status == 201, r.body
    return r.json()


def test_create_get_patch_delete(book: Any) -> None:
    c = add(book, name="Ann Example", emails=["ann@example.org", {"type": "work", "value": "ann@work.example"}],
            phones=[{"type": "cell", "value": "+49 30 1234"}], org="Acme", note="met at FOSDEM")
    assert c["name"] == "Ann Example" and c["addressbook"] == "contacts" and c["org"] == "Acme"
    assert c["emails"] == [{"type": None, "value": "ann@example.org"}, {"type": "work", "value": "ann@work.example"}]
    assert c["phones"] == [{"type": "cell", "value": "+49 30 1234"}] and c["note"] == "met at FOSDEM"
    assert book.api("GET", f"/api/contacts/{c['id']}").json() == c
    card = book.dav("GET", c["url"]).body.decode()
    assert "FN:Ann Example" in card and "VERSION:3.0" in card
    r = book.api("PATCH", f"/api/contacts/{c['id']}", {"name": "Ann Other", "note": None})
    assert r.status == 200 and r.json()["name"] == "Ann Other" and r.json()["note"] is None
    assert r.json()["emails"] == c["emails"]
    assert book.api("DELETE", f"/api/contacts/{c['id']}").status == 204
    assert book.api("GET", f"/api/contacts/{c['id']}").status == 404


def test_patch_keeps_what_a_carddav_client_stored(book: Any) -> None:
    book.put("contacts/ann.vcf", vcard3("ann", "Ann", "ann@example.org",
                                        extra="PHOTO;ENCODING=b;TYPE=PNG:iVBORw0KGgo=\nX-PHONETIC-FIRST-NAME:an"))
    item = book.api("GET", "/api/contacts").json()["items"][0]
    assert item["photo"] is True
    book.api("PATCH", f"/api/contacts/{item['id']}", {"phones": ["+1 555 0100"]})
    card = book.dav("GET", "contacts/ann.vcf").body.decode()
    assert "PHOTO;ENCODING=b;TYPE=PNG:iVBORw0KGgo=" in card and "X-PHONETIC-FIRST-NAME:an" in card
    assert "TEL:+1 555 0100" in card and "EMAIL;TYPE=INTERNET,WORK:ann@example.org" in card


def test_list_is_paginated_and_searchable(book: Any) -> None:
    for i in range(7):
        add(book, name=f"Person {i}", emails=[f"p{i}@example.org"])
    add(book, name="Zed", emails=["zed@elsewhere.example"], phones=["+44 20 7946 0000"])
    seen, cursor = [], None
    while True:
        r = book.api("GET", "/api/contacts?limit=3" + (f"&cursor={cursor}" if cursor else "")).json()
        seen += [c["name"] for c in r["items"]]
        cursor = r["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"Person {i}" for i in range(7)] + ["Zed"]
    assert [c["name"] for c in book.api("GET", "/api/contacts?q=elsewhere").json()["items"]] == ["Zed"]
    assert [c["name"] for c in book.api("GET", "/api/contacts?q=7946").json()["items"]] == ["Zed"]
    assert len(book.api("GET", "/api/contacts?q=person&limit=5").json()["items"]) == 5


def test_bad_input_is_a_json_4xx(book: Any) -> None:
    assert book.api("POST", "/api/contacts", {"name": 5}).status == 400
    assert book.api("POST", "/api/contacts", {"emails": "x@y"}).status == 400
    assert book.api("POST", "/api/contacts", {"name": "x", "addressbook": "nope"}).status == 404
    assert book.api("GET", "/api/contacts?cursor=abc").status == 400
    assert book.api("GET", "/api/contacts/abc").status == 404


def test_other_address_books_and_scopes(book: Any) -> None:
    body = ('<D:mkcol xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav"><D:set><D:prop><D:resourcetype>'
            "<D:collection/><C:addressbook/></D:resourcetype></D:prop></D:set></D:mkcol>")
    assert book.dav("MKCOL", "work/", body).status == 201
    c = add(book, name="Colleague", addressbook="work")
    assert c["addressbook"] == "work"
    assert book.api("GET", "/api/contacts").json()["items"] == []
    assert [x["name"] for x in book.api("GET", "/api/contacts?addressbook=work").json()["items"]] == ["Colleague"]
    names = [b["name"] for b in book.api("GET", "/api/addressbooks").json()["items"]]
    assert names == ["contacts", "collected", "work"]
    assert book.scoped("GET", "/api/contacts", "mail").status == 403
    assert book.scoped("GET", "/api/contacts", "contacts").status == 200


def test_a_second_user_cannot_see_alices_contacts(book: Any) -> None:
    c = add(book, name="Secret", emails=["s@example.org"])
    assert book.api("GET", f"/api/contacts/{c['id']}", user=BOB).status == 404
    assert book.api("PATCH", f"/api/contacts/{c['id']}", {"name": "x"}, user=BOB).status == 404
    assert book.api("DELETE", f"/api/contacts/{c['id']}", user=BOB).status == 404
    assert book.api("GET", "/api/contacts?q=secret", user=BOB).json()["items"] == []


def test_sharing_read_only_and_read_write(book: Any) -> None:
    book.put("contacts/ann.vcf", vcard3("ann", "Ann", "ann@example.org"))
    r = book.api("PUT", f"/api/addressbooks/contacts/shares/{BOB}", {"permission": "read"})
    assert r.status == 200
    shared = r.json()["name"]
    path = f"/dav/addressbooks/{BOB}/{shared}/"
    assert "FN:Ann" in book.dav("GET", path + "ann.vcf", user=BOB).body.decode()
    found = book.dav("PROPFIND", f"/dav/addressbooks/{BOB}/", "", user=BOB, headers={"Depth": "1"})
    assert path.encode() in found.body.replace(b"%40", b"@")
    r = book.dav("PUT", path + "new.vcf", vcard3("new", "New"), user=BOB, headers={"Content-Type": "text/vcard"})
    assert r.status == 403 and b"need-privileges" in r.body
    assert book.dav("DELETE", path + "ann.vcf", user=BOB).status == 403
    assert book.dav("GET", f"/dav/addressbooks/{ALICE}/contacts/ann.vcf", user=CAROL).status == 404
    book.api("PUT", f"/api/addressbooks/contacts/shares/{BOB}", {"permission": "write"})
    r = book.dav("PUT", path + "new.vcf", vcard3("new", "New"), user=BOB, headers={"Content-Type": "text/vcard"})
    assert r.status == 201
    assert book.dav("GET", "contacts/new.vcf").status == 200
    assert book.api("DELETE", f"/api/addressbooks/contacts/shares/{BOB}").status == 204
    assert book.dav("GET", path + "ann.vcf", user=BOB).status == 404


def test_carddav_takes_a_contacts_scoped_token_and_no_other(book: Any) -> None:
    path = f"/dav/addressbooks/{ALICE}/contacts/"

    def propfind(scope: str, target: str = path) -> int:
        token = str(book.registry.tokens.issue(ALICE, scope=scope))
        return int(book.client.request("PROPFIND", target, token=token, headers={"Depth": "0"}).status)

    assert propfind("contacts") == 207
    assert propfind("calendar") == 403
    assert propfind("calendar", f"/dav/%61ddressbooks/{ALICE}/contacts/") == 403
    assert propfind("contacts", f"/dav/calendars/{ALICE}/calendar/") == 403
