"""sync-collection with DAV:limit (RFC 6578 §3.7): truncated answers, 507 on the request-URI, and a
token that continues where the answer stopped, until the client has seen every change once."""

from __future__ import annotations

import re
from urllib.parse import unquote
from xml.sax.saxutils import escape

ALICE = "alice@example.test"
HOME = f"/dav/files/{ALICE}/"


def report(cloud, token: str = "", limit: int | None = None, level: str = "1",
           path: str = "") -> tuple[int, str, str | None]:
    lim = f"<D:limit><D:nresults>{limit}</D:nresults></D:limit>" if limit is not None else ""
    body = (f'<D:sync-collection xmlns:D="DAV:"><D:sync-token>{escape(token)}</D:sync-token>'
            f"<D:sync-level>{level}</D:sync-level>{lim}<D:prop><D:getetag/></D:prop></D:sync-collection>")
    r = cloud.dav("REPORT", path, body)
    text = r.body.decode()
    found = re.search(r"<D:sync-token>([^<]+)</D:sync-token>", text)
    return r.status, text, (found.group(1).replace("&amp;", "&") if found else None)


def members(text: str, base: str = HOME) -> tuple[set[str], set[str], bool]:
    """(changed names, removed names, truncated) of one answer."""
    changed, removed, truncated = set(), set(), False
    for resp in re.findall(r"<D:response>(.*?)</D:response>", text):
        href = unquote(re.search(r"<D:href>([^<]+)</D:href>", resp).group(1))
        if href == base:
            truncated = "507 Insufficient Storage" in resp and "number-of-matches-within-limits" in resp
            continue
        name = href[len(base):].rstrip("/")
        (removed if "404 Not Found" in resp and "<D:propstat>" not in resp else changed).add(name)
    return changed, removed, truncated


def drain(cloud, token: str, limit: int, level: str = "1") -> tuple[str, set[str], set[str], int]:
    """Follow truncated answers to the end: (final token, changed, removed, pages)."""
    changed: set[str] = set()
    removed: set[str] = set()
    for pages in range(1, 100):
        status, text, token = report(cloud, token, limit, level)
        assert status == 207, text
        got, gone, truncated = members(text)
        assert len(got) + len(gone) <= limit, (limit, got, gone)
        changed |= got
        removed |= gone
        if not truncated:
            return token or "", changed, removed, pages
    raise AssertionError("sync never finished")


def test_initial_sync_is_paged_by_the_limit(cloud) -> None:
    for i in range(7):
        assert cloud.dav("PUT", f"f{i}.txt", b"x").status == 201
    status, text, token = report(cloud, "", 3)
    got, gone, truncated = members(text)
    assert status == 207 and truncated and len(got) == 3 and not gone
    assert text.index("507 Insufficient Storage") < text.index("<D:sync-token>")
    final, changed, removed, pages = drain(cloud, "", 3)
    assert changed == {f"f{i}.txt" for i in range(7)} and not removed and pages == 3
    # the final token is an ordinary one: nothing new since
    status, text, _ = report(cloud, final, 3)
    assert members(text) == (set(), set(), False)


def test_incremental_sync_is_cut_at_a_change_boundary(cloud) -> None:
    for i in range(3):
        cloud.dav("PUT", f"old{i}", b"x")
    _, _, token = report(cloud)
    for i in range(5):
        cloud.dav("PUT", f"new{i}", b"y")
    cloud.dav("DELETE", "old0")
    status, text, next_token = report(cloud, token, 2)
    got, gone, truncated = members(text)
    assert status == 207 and truncated and got == {"new0", "new1"} and not gone
    assert next_token != token
    final, changed, removed, _ = drain(cloud, token, 2)
    assert changed == {f"new{i}" for i in range(5)} and removed == {"old0"}
    assert members(report(cloud, final)[1]) == (set(), set(), False)


def test_changes_during_a_paged_initial_sync_are_not_lost(cloud) -> None:
    for name in ("a", "c", "e", "g"):
        cloud.dav("PUT", name, b"1")
    _, text, token = report(cloud, "", 2)
    assert members(text)[0] == {"a", "c"}
    cloud.dav("PUT", "a", b"2")  # already seen: must come again
    cloud.dav("PUT", "b", b"2")  # before the cursor, new: must come
    cloud.dav("DELETE", "c")  # seen, then deleted: must come as removed
    cloud.dav("PUT", "f", b"2")  # after the cursor: comes with the listing
    cloud.dav("DELETE", "g")  # never seen and gone: need not come
    _, changed, removed, _ = drain(cloud, token, 2)
    assert changed == {"a", "b", "e", "f"} and removed == {"c"}


def test_infinite_level_pages_through_subfolders(cloud) -> None:
    cloud.dav("MKCOL", "d")
    for i in range(4):
        cloud.dav("PUT", f"d/x{i}", b"x")
    cloud.dav("PUT", "top", b"x")
    _, changed, _, pages = drain(cloud, "", 2, "infinite")
    assert changed == {"d", "top", *(f"d/x{i}" for i in range(4))} and pages == 3


def test_no_truncation_when_the_limit_is_not_reached(cloud) -> None:
    cloud.dav("PUT", "only", b"x")
    status, text, token = report(cloud, "", 5)
    assert status == 207 and members(text) == ({"only"}, set(), False)
    assert token and ";after=" not in token


def test_a_move_is_never_split(cloud) -> None:
    cloud.dav("PUT", "src", b"x")
    _, _, token = report(cloud)
    base = f"http://localhost{HOME}"
    assert cloud.dav("MOVE", "src", headers={"Destination": base + "dst"}).status == 201
    status, text, _ = report(cloud, token, 1)  # one change touched two members
    assert status == 507 and "number-of-matches-within-limits" in text
    _, changed, removed, _ = drain(cloud, token, 2)
    assert changed == {"dst"} and removed == {"src"}


def test_bad_limits_and_tokens_are_refused(cloud) -> None:
    assert report(cloud, "", 0)[0] == 400
    assert report(cloud, "", "many")[0] == 400  # type: ignore[arg-type]
    assert report(cloud, "urn:tau:files:sync:0;after=")[0] == 403
    assert report(cloud, "urn:tau:files:sync:0;after=%ff")[0] == 403
    assert report(cloud, "urn:tau:files:sync:99999;after=a")[0] == 403
