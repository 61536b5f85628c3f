"""Issue 13 item 6: hostile MIME structure costs bounded work in the REST view too. A 100,000-part
message took 28 s in ``GET /api/emails/{id}`` and a 10,000-deep one was a 500 (RecursionError in
the stdlib ``email`` package); both are delivered (SMTP and IMAP APPEND) and then answer a clean
JSON document with ``truncated: true``, quickly, while IMAP FETCH BODYSTRUCTURE still works."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tau.mail.mime import view
from tests.support.harness import resolve
from tests.support.imap import IMAPEnv
from tests.support.mail_api import ALICE, mail_world
from tests.support.smtp import Client, make_factory

HEAD = b"From: Bob <bob@remote.test>\r\nTo: alice@example.test\r\nSubject: %s\r\nMIME-Version: 1.0\r\n"


def wide(parts: int) -> bytes:
    """One multipart/mixed with ``parts`` one-line parts, built in one join."""
    body = b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" * parts
    return (HEAD % b"wide" + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
            b"--b\r\n\r\nfirst part\r\n" + body + b"--b--\r\n")


def deep(levels: int) -> bytes:
    """``levels`` nested multiparts, each with its own boundary, a text part at the bottom."""
    opens = b"".join(b'Content-Type: multipart/mixed; boundary="d%d"\r\n\r\n--d%d\r\n' % (i, i) for i in range(levels))
    closes = b"".join(b"\r\n--d%d--" % i for i in reversed(range(levels)))
    return HEAD % b"deep" + opens + b"Content-Type: text/plain\r\n\r\nbottom" + closes + b"\r\n"


@pytest.fixture
def mail(tmp_path: Any, db_url: str) -> Any:
    yield from mail_world(tmp_path, db_url)


def deliver_smtp(mail: Any, raw: bytes) -> None:
    c = Client(make_factory(mail.registry, mail.store, "smtp"))
    c.ehlo()
    replies = c.mail("bob@remote.test", [ALICE], raw)
    assert replies[-1].code == 250, replies


def append_imap(imap: IMAPEnv, raw: bytes) -> list[str]:
    c = imap.client(ALICE)
    c.send(b"a1 APPEND INBOX {%d+}\r\n" % len(raw))
    return c.send(raw + b"\r\n").decode().split("\r\n")


@pytest.mark.parametrize("shape", ["wide", "deep"])
def test_hostile_structures_answer_bounded_json_and_bodystructure(mail: Any, shape: str) -> None:
    raw = wide(100_000) if shape == "wide" else deep(10_000)
    imap = IMAPEnv(mail.registry)
    resolve(imap.store.ensure_defaults(ALICE))
    deliver_smtp(mail, raw)
    assert any(line.startswith("a1 OK") for line in append_imap(imap, raw))
    items = mail.items()
    assert len(items) == 2
    for item in items:
        started = time.monotonic()
        r = mail.api("GET", f"/api/emails/{item['id']}")
        took = time.monotonic() - started
        assert r.status == 200, r.body[:300]
        doc = r.json()
        assert doc["truncated"] is True and took < 10, took
        assert ["Subject", shape] in doc["headers"]
        assert len(doc["attachments"]) <= view.MAX_LISTED
        if shape == "wide":
            assert doc["text"] == "first part"
    c = imap.client(ALICE, mailbox="INBOX")
    lines = c.cmd("f1 FETCH 1:2 (BODYSTRUCTURE)")
    assert lines[-1].startswith("f1 OK"), lines[-1]
    assert sum(1 for line in lines if "BODYSTRUCTURE (" in line) == 2


def test_an_ordinary_message_is_not_truncated(mail: Any) -> None:
    mail.send(to=[ALICE], subject="plain", text="hello", attachments=[
        {"filename": "a.bin", "content_type": "application/octet-stream", "content_base64": "AAEC"}])
    [item] = mail.items()
    doc = mail.api("GET", f"/api/emails/{item['id']}").json()
    assert doc["truncated"] is False and doc["text"].strip() == "hello"
    assert [(a["filename"], a["size"]) for a in doc["attachments"]] == [("a.bin", 3)]


def test_the_tree_view_numbers_parts_as_the_stdlib_walk_does() -> None:
    raw = (HEAD % b"mixed" + b'Content-Type: multipart/mixed; boundary="o"\r\n\r\n'
           b"--o\r\nContent-Type: multipart/alternative; boundary=\"i\"\r\n\r\n"
           b"--i\r\nContent-Type: text/plain\r\n\r\nplain\r\n"
           b"--i\r\nContent-Type: text/html\r\n\r\n<p>h</p>\r\n--i--\r\n"
           b"--o\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner body\r\n"
           b"--o\r\nContent-Type: application/pdf; name=\"r.pdf\"\r\nContent-Disposition: attachment\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\nJVBERg==\r\n--o--\r\n")
    normal = view.render(raw)
    from tau.mail.mime import tree

    bounded = view._render_tree(raw, tree.parse_entity(raw, 0, len(raw)))
    assert normal["truncated"] is False and bounded["truncated"] is True
    for key in ("text", "html"):
        assert (normal[key] or "").replace("\r\n", "\n") == bounded[key]
    assert normal["attachments"] == bounded["attachments"]


def test_mail_flows_refuse_a_hostile_message_with_422(tmp_path: Any, db_url: str) -> None:
    """``/api/emails/{id}/attachments/{n}/save`` (and the other flows) parse with the stdlib too."""
    from tau.files import service as files_service
    from tau.flows import service as flows_service
    from tau.http import service as http_service
    from tau.mail import api_service
    from tests.support.harness import add_user, make_registry
    from tests.support.http import FakeHttpClient, assert_json_error
    from tests.support.mail_api import Host

    registry = make_registry(tmp_path / "tau", db_url, limits={"requests_per_minute_ip": "0",
                                                               "requests_per_hour_user": "0"})
    host = Host(registry)
    for service in (http_service, files_service, api_service, flows_service):
        service.install(registry, host)
    add_user(registry, ALICE)
    imap = IMAPEnv(registry)
    resolve(imap.store.ensure_defaults(ALICE))
    box = resolve(imap.store.get_mailbox(ALICE, "INBOX"))
    token = str(registry.tokens.issue(ALICE, scope="mail files calls chat calendar"))
    client = FakeHttpClient(host.http.site)
    for raw in (deep(10_000), wide(100_000)):
        uid = imap.append(ALICE, raw)
        started = time.monotonic()
        r = client.request("POST", f"/api/emails/{box.id}.{uid}/attachments/1/save", token=token)
        assert_json_error(r, 422, "message_too_complex")
        assert time.monotonic() - started < 10
    registry.db.close()
