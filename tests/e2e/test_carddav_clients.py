"""TauContacts acceptance with real clients against the real daemon, on SQLite and PostgreSQL:
the CardDAV flow a client library runs with ``requests`` (discovery from /.well-known/carddav,
PUT vCard 3.0 and 4.0, addressbook-query by email, multiget, sync-collection) and
``vdirsyncer`` syncing contacts both ways with a filesystem store (conflicting edit, deletes)."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urljoin

import pytest

from tests.support.contacts import vcard3, vcard4
from tests.support.daemon import TauDaemon
from tests.support.databases import daemon_database_url, engines

requests = pytest.importorskip("requests")
pytestmark = pytest.mark.e2e
ALICE, BOB, PASSWORD = "alice@example.test", "bob@example.test", "secret-Pa55"
QUIET = {"TAU_LIMITS_REQUESTS_PER_MINUTE_IP": "0", "TAU_LIMITS_REQUESTS_PER_HOUR_USER": "0"}
D, CR = "{DAV:}", "{urn:ietf:params:xml:ns:carddav}"
NS = 'xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav"'


@pytest.fixture(scope="module", params=engines())
def daemon(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    url = daemon_database_url(request)
    d = TauDaemon(tmp_path_factory.mktemp(f"carddav-{request.param}"), database_url=url, listeners=("http",),
                  extra=QUIET).init()
    d.add_user(ALICE, PASSWORD)
    d.add_user(BOB, PASSWORD)
    d.start()
    yield d
    d.stop()


def dav(session: requests.Session, method: str, url: str, body: str = "", depth: str = "0",
        **headers: str) -> requests.Response:
    hdrs = {"Depth": depth, "Content-Type": "application/xml; charset=utf-8", **headers}
    return session.request(method, url, data=body.encode(), headers=hdrs, allow_redirects=False)


def hrefs(resp: requests.Response) -> dict[str, ET.Element]:
    assert resp.status_code == 207, resp.text
    return {r.findtext(D + "href"): r for r in ET.fromstring(resp.content).findall(D + "response")}


def test_carddav_flow_with_requests(daemon: TauDaemon) -> None:
    s = requests.Session()
    s.auth = (ALICE, PASSWORD)
    r = dav(s, "PROPFIND", daemon.url + "/.well-known/carddav", "<D:propfind xmlns:D='DAV:'><D:prop>"
            "<D:current-user-principal/></D:prop></D:propfind>")
    assert r.status_code in (301, 302, 307, 308)
    root = urljoin(daemon.url, r.headers["Location"])
    found = hrefs(dav(s, "PROPFIND", root, "<D:propfind xmlns:D='DAV:'><D:prop><D:current-user-principal/>"
                      "</D:prop></D:propfind>"))
    principal = urljoin(root, next(iter(found.values())).find(f".//{D}current-user-principal/{D}href").text)
    found = hrefs(dav(s, "PROPFIND", principal, f"<D:propfind {NS}><D:prop><C:addressbook-home-set/>"
                      "</D:prop></D:propfind>"))
    home = urljoin(principal, next(iter(found.values())).find(f".//{CR}addressbook-home-set/{D}href").text)
    found = hrefs(dav(s, "PROPFIND", home, "<D:propfind xmlns:D='DAV:'><D:prop><D:resourcetype/></D:prop>"
                      "</D:propfind>", depth="1"))
    books = [h for h, r in found.items() if r.find(f".//{D}resourcetype/{CR}addressbook") is not None]
    book = urljoin(home, next(h for h in books if h.rstrip("/").endswith("contacts")))

    three = vcard3("ann", "Ann Example", "ann@example.org")
    four = vcard4("bea", "Bea Beispiel", "bea@example.org", "+1-555-0100")
    assert s.put(book + "ann.vcf", data=three.encode(), headers={"Content-Type": "text/vcard"}).status_code == 201
    assert s.put(book + "bea.vcf", data=four.encode(), headers={"Content-Type": "text/vcard"}).status_code == 201

    found = hrefs(dav(s, "REPORT", book, f"<C:addressbook-query {NS}><D:prop><D:getetag/></D:prop><C:filter>"
                      '<C:prop-filter name="EMAIL"><C:text-match match-type="equals">bea@example.org</C:text-match>'
                      "</C:prop-filter></C:filter></C:addressbook-query>", depth="1"))
    assert [h.rsplit("/", 1)[-1] for h in found] == ["bea.vcf"]
    found = hrefs(dav(s, "REPORT", book, f"<C:addressbook-multiget {NS}><D:prop><C:address-data/></D:prop>"
                      f"<D:href>{list(found)[0]}</D:href><D:href>{list(found)[0].replace('bea', 'ann')}</D:href>"
                      "</C:addressbook-multiget>", depth="1"))
    data = sorted(r.find(f".//{CR}address-data").text.replace("\r\n", "\n") for r in found.values())
    assert data == sorted(x.replace("\r\n", "\n") for x in (three, four))

    sync = ("<D:sync-collection xmlns:D='DAV:'><D:sync-token>{}</D:sync-token><D:sync-level>1</D:sync-level>"
            "<D:prop><D:getetag/></D:prop></D:sync-collection>")
    first = dav(s, "REPORT", book, sync.format(""))
    token = ET.fromstring(first.content).findtext(D + "sync-token")
    assert sorted(h.rsplit("/", 1)[-1] for h in hrefs(first)) == ["ann.vcf", "bea.vcf"]
    assert s.delete(book + "ann.vcf").status_code == 204
    later = hrefs(dav(s, "REPORT", book, sync.format(token)))
    assert [(h.rsplit("/", 1)[-1], "404" in (r.findtext(D + "status") or "")) for h, r in later.items()] == \
        [("ann.vcf", True)]

    bob = requests.Session()
    bob.auth = (BOB, PASSWORD)
    assert bob.get(book + "bea.vcf").status_code == 404
    assert dav(bob, "PROPFIND", home, depth="1").status_code == 403


@pytest.mark.skipif(shutil.which("vdirsyncer") is None, reason="vdirsyncer not installed (apt-get install vdirsyncer)")
def test_vdirsyncer_syncs_contacts_both_ways(daemon: TauDaemon, tmp_path: Path) -> None:
    s = requests.Session()
    s.auth = (ALICE, PASSWORD)
    book = f"{daemon.url}/dav/addressbooks/{ALICE}/synced/"
    r = dav(s, "MKCOL", book, f"<D:mkcol {NS}><D:set><D:prop><D:resourcetype><D:collection/><C:addressbook/>"
            "</D:resourcetype></D:prop></D:set></D:mkcol>")
    assert r.status_code == 201, r.text
    s.put(book + "srv.vcf", data=vcard3("srv-1", "From Server", "srv@example.org").encode(),
          headers={"Content-Type": "text/vcard"})
    s.put(book + "both.vcf", data=vcard3("both-1", "Shared Original").encode(), headers={"Content-Type": "text/vcard"})
    local = tmp_path / "local"
    local.mkdir()
    config = tmp_path / "config"
    config.write_text(f"""[general]
status_path = "{tmp_path / 'status'}"

[pair contacts]
a = "contacts_local"
b = "contacts_remote"
collections = null
conflict_resolution = "b wins"

[storage contacts_local]
type = "filesystem"
path = "{local}"
fileext = ".vcf"

[storage contacts_remote]
type = "carddav"
url = "{book}"
username = "{ALICE}"
password = "{PASSWORD}"
""")

    def run(*args: str) -> None:
        out = subprocess.run(["vdirsyncer", "-c", str(config), *args], capture_output=True, timeout=120,
                             input=b"y\n")
        assert out.returncode == 0, out.stdout.decode() + out.stderr.decode()

    def remote() -> dict[str, str]:
        found = hrefs(dav(s, "REPORT", book, f"<C:addressbook-query {NS}><D:prop><C:address-data/></D:prop>"
                          "</C:addressbook-query>", depth="1"))
        out = {}
        for r in found.values():
            text = r.find(f".//{CR}address-data").text
            uid = next(x for x in text.splitlines() if x.startswith("UID:"))[4:]
            out[uid.strip().removeprefix("urn:uuid:")] = text
        return out

    run("discover", "contacts")
    run("sync", "contacts")
    files = {p.read_text().split("UID:")[1].split()[0]: p for p in local.glob("*.vcf")}
    assert sorted(files) == ["both-1", "srv-1"]
    (local / "loc.vcf").write_text(vcard4("loc-1", "From Disk", "disk@example.org"))
    files["srv-1"].write_text(files["srv-1"].read_text().replace("From Server", "Edited On Disk"))
    # a conflicting edit: both sides change the same card between syncs; the server ("b") wins
    files["both-1"].write_text(files["both-1"].read_text().replace("Shared Original", "Local Edit"))
    href = book + "both.vcf"
    etag = s.get(href).headers["ETag"]
    assert s.put(href, data=vcard3("both-1", "Server Edit").encode(),
                 headers={"Content-Type": "text/vcard", "If-Match": etag}).status_code == 204
    run("sync", "contacts")
    cards = remote()
    assert sorted(cards) == ["both-1", "loc-1", "srv-1"]
    assert "FN:Edited On Disk" in cards["srv-1"] and "FN:Server Edit" in cards["both-1"]
    sent = vcard4("loc-1", "From Disk", "disk@example.org")
    assert cards["loc-1"].replace("\r\n", "\n") == sent.replace("\r\n", "\n")   # the client's bytes
    assert "Server Edit" in files["both-1"].read_text()
    # deletes both ways
    files["srv-1"].unlink()
    assert s.delete(href).status_code == 204
    run("sync", "contacts")
    assert sorted(remote()) == ["loc-1"]
    assert [p.read_text().count("BEGIN:VCARD") for p in local.glob("*.vcf")] == [1]
