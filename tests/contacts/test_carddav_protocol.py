"""CardDAV (RFC 6352) on the WebDAV core, in process, on SQLite and PostgreSQL: discovery,
vCard 3.0 and 4.0, addressbook-query, multiget, sync-collection with paging, conditional
requests, max-resource-size, extended MKCOL and privacy between users."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from typing import Any

from tests.support.contacts import ALICE, BOB, CARD_NS, vcard3, vcard4

D = "{DAV:}"
CR = "{" + CARD_NS + "}"
HOME = f"/dav/addressbooks/{ALICE}/"
BOOK = HOME + "contacts/"


def responses(body: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for resp in ET.fromstring(body).findall(D + "response"):
        href = resp.findtext(D + "href")
        props = {}
        for ps in resp.findall(D + "propstat"):
            if " 200 " in (ps.findtext(D + "status") or ""):
                for prop in ps.find(D + "prop"):
                    props[prop.tag] = prop
        out[href] = props if resp.find(D + "propstat") is not None else resp.findtext(D + "status")
    return out


def propfind(book: Any, path: str, props: str, depth: str = "0", user: str = ALICE) -> dict[str, Any]:
    r = book.dav("PROPFIND", path, f'<propfind xmlns="DAV:" xmlns:C="{CARD_NS}" '
                 f'xmlns:CS="http://calendarserver.org/ns/"><prop>{props}</prop></propfind>',
                 user=user, headers={"Depth": depth})
    assert r.status == 207, r.body
    return responses(r.body)


def query(book: Any, filt: str, path: str = "contacts/", extra: str = "") -> dict[str, Any]:
    r = book.dav("REPORT", path, f'<C:addressbook-query xmlns:D="DAV:" xmlns:C="{CARD_NS}"><D:prop><D:getetag/>'
                 f"<C:address-data/></D:prop><C:filter {filt}</C:filter>{extra}</C:addressbook-query>",
                 headers={"Depth": "1"})
    assert r.status == 207, r.body
    return responses(r.body)


def names(found: dict[str, Any]) -> list[str]:
    return sorted(h.rsplit("/", 1)[-1] for h, v in found.items() if isinstance(v, dict))


def test_discovery_from_well_known_to_the_default_address_book(book: Any) -> None:
    r = book.client.request("PROPFIND", "/.well-known/carddav")
    assert r.status == 307 and r.header("location") == "/dav/addressbooks/"
    root = propfind(book, "/dav/addressbooks/", "<current-user-principal/>")
    principal = root["/dav/addressbooks/"][D + "current-user-principal"].findtext(D + "href")
    assert principal == HOME
    home = propfind(book, principal, "<C:addressbook-home-set/>")[HOME][CR + "addressbook-home-set"]
    assert home.findtext(D + "href") == HOME
    found = propfind(book, HOME, "<resourcetype/><displayname/><CS:getctag/><C:supported-address-data/>"
                     "<C:max-resource-size/>", depth="1")
    assert CR + "addressbook" in [t.tag for t in found[BOOK][D + "resourcetype"]]
    assert found[BOOK][D + "displayname"].text == "Contacts"
    assert found[HOME + "collected/"][D + "displayname"].text == "Collected"
    versions = [e.get("version") for e in found[BOOK][CR + "supported-address-data"]]
    assert versions == ["3.0", "4.0"] and int(found[BOOK][CR + "max-resource-size"].text) >= 1024 * 1024
    assert "addressbook" in book.dav("OPTIONS", BOOK).header("dav")


def test_the_caldav_principal_names_the_address_book_home(book: Any) -> None:
    found = propfind(book, f"/dav/principals/{ALICE}/", "<C:addressbook-home-set/>")
    assert found[f"/dav/principals/{ALICE}/"][CR + "addressbook-home-set"].findtext(D + "href") == HOME


def test_put_keeps_the_clients_bytes_for_3_0_and_4_0(book: Any) -> None:
    three = vcard3("ann", "Ann Example", "ann@example.org", "+49 30 1234")
    four = vcard4("bea", "Bea Beispiel", "bea@example.org", "+1-555-0100",
                  "PHOTO:data:image/png;base64,iVBORw0KGgo=\nX-CUSTOM;FOO=bar:kept")
    r = book.put("contacts/ann.vcf", three)
    assert r.status == 201 and r.header("etag")
    assert book.put("contacts/bea.vcf", four).status == 201
    got = book.dav("GET", "contacts/bea.vcf")
    assert got.body == four.encode() and got.header("content-type").startswith("text/vcard")
    assert got.header("etag") == book.dav("GET", "contacts/bea.vcf").header("etag")
    assert book.dav("GET", "contacts/ann.vcf").body == three.encode()


def test_invalid_vcards_are_refused_with_the_carddav_precondition(book: Any) -> None:
    r = book.put("contacts/x.vcf", "BEGIN:VCARD\r\nVERSION:2.1\r\nFN:x\r\nEND:VCARD\r\n")
    assert r.status == 403 and b"supported-address-data" in r.body
    r = book.put("contacts/y.vcf", "hello")
    assert r.status == 403 and b"valid-address-data" in r.body
    r = book.put("contacts/z.vcf", vcard3("z", "Z") + vcard3("w", "W"))
    assert r.status == 403 and b"valid-address-data" in r.body
    assert book.put("contacts/one.vcf", vcard3("same", "One")).status == 201
    r = book.put("contacts/two.vcf", vcard3("same", "Two"))
    assert r.status == 403 and b"no-uid-conflict" in r.body


def test_max_resource_size_is_enforced(book: Any) -> None:
    photo = base64.b64encode(b"x" * (3 * 1024 * 1024)).decode()
    r = book.put("contacts/big.vcf", vcard3("big", "Big", extra=f"PHOTO;ENCODING=b;TYPE=JPEG:{photo}"))
    assert r.status in (403, 413) and (r.status == 413 or b"max-resource-size" in r.body)
    assert book.dav("GET", "contacts/big.vcf").status == 404


def test_if_match_and_if_none_match(book: Any) -> None:
    etag = book.put("contacts/ann.vcf", vcard3("ann", "Ann")).header("etag")
    assert book.put("contacts/ann.vcf", vcard3("ann", "Ann 2"), **{"If-None-Match": "*"}).status == 412
    assert book.put("contacts/ann.vcf", vcard3("ann", "Ann 2"), **{"If-Match": '"nope"'}).status == 412
    r = book.put("contacts/ann.vcf", vcard3("ann", "Ann 2"), **{"If-Match": etag})
    assert r.status == 204 and r.header("etag") != etag
    assert book.dav("DELETE", "contacts/ann.vcf", headers={"If-Match": etag}).status == 412
    assert book.dav("DELETE", "contacts/ann.vcf", headers={"If-Match": r.header("etag")}).status == 204


def test_addressbook_query_text_match_on_indexed_properties(book: Any) -> None:
    book.put("contacts/ann.vcf", vcard3("ann", "Ann Example", "ann@example.org", "+49 30 1234",
                                        "NICKNAME:Annie,Nan"))
    book.put("contacts/bea.vcf", vcard4("bea", "Bea Beispiel", "bea@work.example", "+1-555-0100"))
    book.put("contacts/cid.vcf", vcard3("cid", "Cid", extra="ORG:Acme"))

    def by(prop: str, text: str, how: str = "contains", negate: str = "no") -> list[str]:
        return names(query(book, f'><C:prop-filter name="{prop}"><C:text-match match-type="{how}" '
                           f'negate-condition="{negate}">{text}</C:text-match></C:prop-filter>'))

    assert by("EMAIL", "ANN@EXAMPLE.ORG", "equals") == ["ann.vcf"]
    assert by("EMAIL", "example") == ["ann.vcf", "bea.vcf"]
    assert by("FN", "bea", "starts-with") == ["bea.vcf"]
    assert by("TEL", "555") == ["bea.vcf"]
    assert by("NICKNAME", "nan", "equals") == ["ann.vcf"]
    assert by("UID", "urn:uuid:bea", "equals") == ["bea.vcf"]
    assert by("EMAIL", ".org", "ends-with", "yes") == ["bea.vcf"]
    assert by("ORG", "acme") == ["cid.vcf"]          # not indexed: evaluated on the cards
    found = query(book, '><C:prop-filter name="EMAIL"><C:is-not-defined/></C:prop-filter>')
    assert names(found) == ["cid.vcf"]
    data = found[BOOK + "cid.vcf"][CR + "address-data"].text
    assert data.replace("\n", "\r\n").replace("\r\r", "\r") == vcard3("cid", "Cid", extra="ORG:Acme")
    both = query(book, ' test="allof"><C:prop-filter name="FN"><C:text-match>a</C:text-match></C:prop-filter>'
                 '<C:prop-filter name="EMAIL"><C:text-match>work</C:text-match></C:prop-filter>')
    assert names(both) == ["bea.vcf"]


def test_addressbook_query_limit_and_bad_collation(book: Any) -> None:
    for i in range(5):
        book.put(f"contacts/p{i}.vcf", vcard3(f"p{i}", f"Person {i}"))
    found = query(book, '><C:prop-filter name="FN"><C:text-match>person</C:text-match></C:prop-filter>',
                  extra="<C:limit><C:nresults>2</C:nresults></C:limit>")
    assert len(names(found)) == 2 and "507" in found[BOOK]
    r = book.dav("REPORT", "contacts/", f'<C:addressbook-query xmlns:D="DAV:" xmlns:C="{CARD_NS}"><C:filter>'
                 '<C:prop-filter name="FN"><C:text-match collation="i;klingon">x</C:text-match></C:prop-filter>'
                 "</C:filter></C:addressbook-query>", headers={"Depth": "1"})
    assert r.status == 403 and b"supported-collation" in r.body


def test_multiget_returns_cards_and_404s(book: Any) -> None:
    book.put("contacts/ann.vcf", vcard3("ann", "Ann"))
    book.put("contacts/bea.vcf", vcard4("bea", "Bea"))
    r = book.dav("REPORT", "contacts/", f'<C:addressbook-multiget xmlns:D="DAV:" xmlns:C="{CARD_NS}"><D:prop>'
                 f"<D:getetag/><C:address-data/></D:prop><D:href>{BOOK}ann.vcf</D:href>"
                 f"<D:href>{BOOK}bea.vcf</D:href><D:href>{BOOK}nope.vcf</D:href></C:addressbook-multiget>",
                 headers={"Depth": "1"})
    found = responses(r.body)
    assert "FN:Ann" in found[BOOK + "ann.vcf"][CR + "address-data"].text
    assert "VERSION:4.0" in found[BOOK + "bea.vcf"][CR + "address-data"].text
    assert "404" in found[BOOK + "nope.vcf"]


def sync(book: Any, token: str = "", limit: int | None = None) -> tuple[dict[str, Any], str]:
    lim = f"<D:limit><D:nresults>{limit}</D:nresults></D:limit>" if limit else ""
    r = book.dav("REPORT", "contacts/", f'<D:sync-collection xmlns:D="DAV:"><D:sync-token>{token}</D:sync-token>'
                 f"<D:sync-level>1</D:sync-level>{lim}<D:prop><D:getetag/></D:prop></D:sync-collection>")
    assert r.status == 207, r.body
    return responses(r.body), ET.fromstring(r.body).findtext(D + "sync-token")


def test_sync_collection_with_paging_and_deletes(book: Any) -> None:
    for i in range(5):
        book.put(f"contacts/p{i}.vcf", vcard3(f"p{i}", f"Person {i}"))
    seen: list[str] = []
    found, token = sync(book, limit=2)
    assert "507" in found[BOOK]
    seen += names(found)
    while "507" in str(found.get(BOOK, "")):
        found, token = sync(book, token, limit=2)
        seen += names(found)
    assert sorted(seen) == [f"p{i}.vcf" for i in range(5)]
    ctag_before = propfind(book, BOOK, "<CS:getctag/>")[BOOK]["{http://calendarserver.org/ns/}getctag"].text
    book.dav("DELETE", "contacts/p1.vcf")
    book.put("contacts/p2.vcf", vcard3("p2", "Person Two"))
    found, token2 = sync(book, token)
    assert names(found) == ["p2.vcf"] and "404" in found[BOOK + "p1.vcf"] and token2 != token
    assert propfind(book, BOOK, "<CS:getctag/>")[BOOK]["{http://calendarserver.org/ns/}getctag"].text != ctag_before
    assert sync(book, token2)[0] == {}
    r = book.dav("REPORT", "contacts/", '<D:sync-collection xmlns:D="DAV:"><D:sync-token>urn:bogus</D:sync-token>'
                 "<D:sync-level>1</D:sync-level><D:prop/></D:sync-collection>")
    assert r.status == 403 and b"valid-sync-token" in r.body


def test_extended_mkcol_creates_address_books(book: Any) -> None:
    body = (f'<D:mkcol xmlns:D="DAV:" xmlns:C="{CARD_NS}"><D:set><D:prop><D:resourcetype><D:collection/>'
            "<C:addressbook/></D:resourcetype><D:displayname>Work</D:displayname>"
            "<C:addressbook-description>Colleagues</C:addressbook-description></D:prop></D:set></D:mkcol>")
    assert book.dav("MKCOL", "work/", body).status == 201
    assert book.dav("MKCOL", "work/", body).status == 405
    assert book.dav("MKCOL", "plain/").status == 403
    props = propfind(book, HOME + "work/", "<displayname/><C:addressbook-description/>")[HOME + "work/"]
    assert props[D + "displayname"].text == "Work" and props[CR + "addressbook-description"].text == "Colleagues"
    assert book.put("work/w.vcf", vcard3("w", "W")).status == 201
    assert book.dav("DELETE", "contacts/").status == 403
    assert book.dav("DELETE", "work/").status == 204
    assert book.dav("GET", "work/w.vcf").status == 404


def test_another_user_cannot_read_or_write_alices_address_books(book: Any) -> None:
    book.put("contacts/ann.vcf", vcard3("ann", "Ann", "ann@example.org"))
    assert book.dav("PROPFIND", HOME, "", user=BOB, headers={"Depth": "1"}).status == 403
    assert book.dav("GET", BOOK + "ann.vcf", user=BOB).status == 404
    assert book.dav("PROPFIND", BOOK, "", user=BOB, headers={"Depth": "1"}).status == 404
    assert book.dav("PUT", BOOK + "evil.vcf", vcard3("e", "E"), user=BOB,
                    headers={"Content-Type": "text/vcard"}).status == 404
    r = book.dav("REPORT", BOOK, f'<C:addressbook-query xmlns:D="DAV:" xmlns:C="{CARD_NS}"><D:prop><C:address-data/>'
                 "</D:prop></C:addressbook-query>", user=BOB, headers={"Depth": "1"})
    assert r.status == 404


def test_bad_requests_are_dav_errors_not_crashes(book: Any) -> None:
    def report(body: str) -> int:
        return int(book.dav("REPORT", "contacts/", body, headers={"Depth": "1"}).status)

    assert report("<not xml") == 400
    assert report(f'<C:addressbook-query xmlns:C="{CARD_NS}"><C:filter><C:prop-filter/></C:filter>'
                  "</C:addressbook-query>") == 400
    assert report(f'<C:addressbook-query xmlns:C="{CARD_NS}"><C:filter><C:prop-filter name="FN">'
                  '<C:text-match match-type="sounds-like">x</C:text-match></C:prop-filter></C:filter>'
                  "</C:addressbook-query>") == 400
    assert report(f'<C:addressbook-query xmlns:C="{CARD_NS}"><C:limit><C:nresults>-1</C:nresults></C:limit>'
                  "</C:addressbook-query>") == 400
    assert report('<D:sync-collection xmlns:D="DAV:"><D:sync-token/><D:sync-level>1</D:sync-level>'
                  "<D:limit><D:nresults>0</D:nresults></D:limit><D:prop/></D:sync-collection>") == 400
    assert book.put("not-a-book.vcf", vcard3("x", "X")).status == 403
    assert book.put("missing/x.vcf", vcard3("x", "X")).status == 404
    assert book.put("contacts/a/b/c.vcf", vcard3("x", "X")).status == 404
    assert book.put("contacts/bin.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:\xff\r\nEND:VCARD\r\n").status == 201
    r = book.dav("PUT", "contacts/latin1.vcf", b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:\xff\r\nEND:VCARD\r\n",
                 headers={"Content-Type": "text/vcard"})
    assert r.status == 403 and b"valid-address-data" in r.body
    ical = {"Content-Type": "text/calendar"}
    assert book.dav("PUT", "contacts/cal.vcf", vcard3("c", "C"), headers=ical).status == 403


def test_move_a_card_between_address_books(book: Any) -> None:
    body = (f'<D:mkcol xmlns:D="DAV:" xmlns:C="{CARD_NS}"><D:set><D:prop><D:resourcetype><D:collection/>'
            "<C:addressbook/></D:resourcetype></D:prop></D:set></D:mkcol>")
    assert book.dav("MKCOL", "work/", body).status == 201
    book.put("contacts/ann.vcf", vcard3("ann", "Ann"))
    r = book.dav("MOVE", "contacts/ann.vcf", headers={"Destination": f"http://localhost{HOME}work/ann.vcf"})
    assert r.status == 201
    assert book.dav("GET", "contacts/ann.vcf").status == 404
    assert book.dav("GET", "work/ann.vcf").body == vcard3("ann", "Ann").encode()
