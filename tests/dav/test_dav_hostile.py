"""Bad input, each its own test (issue 5): traversal, XML attacks, huge bodies, other users' trees."""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

ALICE, BOB = "alice@example.test", "bob@example.test"
LOCKINFO = ('<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/>'
            "</D:locktype></D:lockinfo>")


TRAVERSALS = [
    "/dav/files/alice@example.test/../bob@example.test/x",
    "/dav/files/alice@example.test/%2e%2e/bob@example.test/x",
    "/dav/files/alice@example.test/%2E%2E/%2e%2e/etc/passwd",
    "/dav/files/alice@example.test/a%2f..%2f..%2fx",
    "/dav/files/alice@example.test/.%2e/x",
    "/dav/files/alice@example.test/a%00b",
    "/dav/files/alice@example.test/a%5c..%5cb",
    "/dav/files/alice@example.test/./x",
    "/dav/files/alice@example.test/%ff%fe",
]


def test_path_traversal_is_refused(cloud) -> None:
    for path in TRAVERSALS:
        for method in ("GET", "PUT", "PROPFIND"):
            r = cloud.dav(method, path, b"x" if method == "PUT" else b"", headers={"Depth": "0"})
            assert r.status in (400, 403, 404), (method, path, r.status)
    assert cloud.dav("PROPFIND", "/dav/files/bob@example.test/", user=BOB, headers={"Depth": "1"}).body.count(
        b"<D:response>") == 1


DESTINATIONS = [
    ("http://evil.example/dav/files/alice@example.test/x", 502),
    ("http://localhost:9/dav/files/alice@example.test/x", 502),
    ("http://localhost/dav/files/bob@example.test/stolen", 403),
    ("/dav/files/bob@example.test/stolen", 403),
    ("http://localhost/dav/files/alice@example.test/../bob@example.test/x", 400),
    ("http://localhost/dav/files/alice@example.test/%2e%2e/bob@example.test/x", 400),
    ("http://localhost/api/files", 403),
    ("ftp://localhost/dav/files/alice@example.test/x", 400),
]


def test_destination_outside_own_tree(cloud) -> None:
    cloud.dav("PUT", "doc", b"secret")
    for dest, status in DESTINATIONS:
        for method in ("COPY", "MOVE"):
            assert cloud.dav(method, "doc", headers={"Destination": dest}).status == status, (method, dest)
    r = cloud.dav("PROPFIND", f"/dav/files/{BOB}/", user=BOB, headers={"Depth": "1"})
    assert b"stolen" not in r.body


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<D:propfind xmlns:D="DAV:"><D:prop><D:getetag>&lol3;</D:getetag></D:prop></D:propfind>"""

XXE = b"""<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><Z:x xmlns:Z="urn:z">&xxe;</Z:x></D:prop></D:set></D:propertyupdate>"""


def test_xml_bomb_is_refused(cloud) -> None:
    r = cloud.dav("PROPFIND", "", BOMB, headers={"Depth": "0"})
    assert r.status == 400 and b"lollol" not in r.body


def test_external_entity_is_refused(cloud) -> None:
    cloud.dav("PUT", "f", b"1")
    r = cloud.dav("PROPPATCH", "f", XXE)
    assert r.status == 400
    r = cloud.dav("PROPFIND", "f", '<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>', headers={"Depth": "0"})
    assert b"root:" not in r.body


def test_external_dtd_in_report_is_refused(cloud) -> None:
    body = b'<?xml version="1.0"?><!DOCTYPE r SYSTEM "http://127.0.0.1:9/x.dtd"><D:sync-collection xmlns:D="DAV:"/>'
    assert cloud.dav("REPORT", "", body).status == 400


def test_propfind_with_50_mb_body(cloud) -> None:
    filler = b"<D:getetag/>" * (50 * 1024 * 1024 // 12)
    body = b'<D:propfind xmlns:D="DAV:"><D:prop>' + filler + b"</D:prop></D:propfind>"
    r = cloud.dav("PROPFIND", "", body, headers={"Depth": "0"})
    assert r.status == 413
    small = body[:3 * 1024 * 1024]  # chunked: no declared length, the sink stops keeping at 1 MiB
    r = cloud.dav("PROPFIND", "", small, headers={"Depth": "0"}, chunked=True)
    assert r.status == 413


def test_copy_folder_into_itself(cloud) -> None:
    cloud.dav("MKCOL", "f")
    cloud.dav("MKCOL", "f/sub")
    base = f"http://localhost/dav/files/{ALICE}/"
    for method in ("COPY", "MOVE"):
        assert cloud.dav(method, "f", headers={"Destination": base + "f/sub/f"}).status == 403
        assert cloud.dav(method, "f", headers={"Destination": base + "f"}).status == 403
    assert cloud.dav("MOVE", "f/sub", headers={"Destination": base + "f", "Overwrite": "T"}).status == 403
    assert cloud.dav("PROPFIND", "f/sub", headers={"Depth": "0"}).status == 207


def test_upload_over_quota(cloud) -> None:
    cloud.registry.db.sync.run("q", lambda txn: txn.execute("UPDATE users SET quota_bytes = 1000 WHERE address = ?",
                                                            (ALICE,)))
    assert cloud.dav("PUT", "small", b"x" * 600).status == 201
    blobs_before = cloud.blob_keys()
    r = cloud.dav("PUT", "big", b"y" * 600)
    assert r.status == 507 and b"quota-not-exceeded" in r.body
    assert cloud.dav("GET", "big").status == 404
    assert cloud.blob_keys() == blobs_before and cloud.temp_files() == []
    r = cloud.api("POST", "/api/files?path=/big2", b"z" * 600)
    assert r.status == 507 and cloud.blob_keys() == blobs_before
    base = f"http://localhost/dav/files/{ALICE}/"
    assert cloud.dav("COPY", "small", headers={"Destination": base + "copy"}).status == 507
    assert cloud.dav("GET", "copy").status == 404


def _cut_off_put(cloud, path: str, total: int, sent: int) -> None:
    site = cloud.site
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
    channel.makeConnection(transport)
    auth = cloud.basic()["Authorization"]
    head = (f"PUT {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\n"
            f"Content-Length: {total}\r\n\r\n").encode()
    channel.dataReceived(head + b"a" * sent)
    channel.connectionLost(Failure(ConnectionError("client went away")))


def test_put_cut_off_midway(cloud) -> None:
    _cut_off_put(cloud, f"/dav/files/{ALICE}/partial.bin", 1_000_000, 400_000)
    assert cloud.dav("GET", "partial.bin").status == 404
    assert cloud.blob_keys() == [] and cloud.temp_files() == []
    assert cloud.dav("PUT", "partial.bin", b"whole").status == 201


def test_lock_held_by_another_user(cloud) -> None:
    cloud.dav("MKCOL", "team")
    cloud.dav("PUT", "team/plan.txt", b"v1")
    file_id = cloud.api("GET", "/api/files?path=/team").json()["items"][0]["id"]
    folder = cloud.api("GET", "/api/files?path=/").json()["items"][0]["id"]
    r = cloud.api("POST", "/api/shares", b'{"file_id": "%s", "user": "%s", "permission": "write"}' % (
        folder.encode(), BOB.encode()), headers={"Content-Type": "application/json"})
    assert r.status == 201, r.body
    bob_path = f"/dav/files/{BOB}/Shared/team/plan.txt"
    assert cloud.dav("PUT", bob_path, b"bob", user=BOB).status == 204  # a write share works
    token = cloud.dav("LOCK", "team/plan.txt", LOCKINFO).header("lock-token")
    assert cloud.dav("PUT", bob_path, b"bob2", user=BOB).status == 423
    assert cloud.dav("PUT", bob_path, b"bob2", user=BOB, headers={"If": f"({token})"}).status == 423
    assert cloud.dav("UNLOCK", bob_path, user=BOB, headers={"Lock-Token": token}).status == 403
    assert cloud.dav("DELETE", bob_path, user=BOB).status == 423
    assert cloud.api("POST", "/api/files?path=/Shared/team/plan.txt", b"x", user=BOB).status == 423
    assert cloud.dav("GET", "team/plan.txt").body == b"bob"
    assert file_id


def test_bob_cannot_read_alices_files(cloud) -> None:
    cloud.dav("PUT", "diary.txt", b"dear diary")
    alice_file = cloud.api("GET", "/api/files?path=/").json()["items"][0]["id"]
    for method in ("GET", "PROPFIND", "DELETE", "PUT", "LOCK", "PROPPATCH"):
        r = cloud.dav(method, f"/dav/files/{ALICE}/diary.txt", b"", user=BOB, headers={"Depth": "0"})
        assert r.status == 403, method
    nobody = cloud.dav("GET", "/dav/files/nobody@example.test/diary.txt", user=BOB)
    assert nobody.status == 403  # same answer whether or not the user exists
    assert cloud.api("GET", f"/api/files/{alice_file}", user=BOB).status == 404
    assert cloud.api("DELETE", f"/api/files/{alice_file}", user=BOB).status == 404
    assert cloud.dav("GET", "diary.txt").body == b"dear diary"
    assert cloud.client.request("GET", f"/dav/files/{ALICE}/diary.txt").status == 401


def test_unauthenticated_put_leaves_nothing(cloud) -> None:
    r = cloud.client.request("PUT", f"/dav/files/{ALICE}/anon.bin", b"q" * 300_000)
    assert r.status == 401
    r = cloud.dav("PUT", f"/dav/files/{ALICE}/anon.bin", b"q" * 300_000, user=BOB)
    assert r.status == 403
    assert cloud.blob_keys() == [] and cloud.temp_files() == []
