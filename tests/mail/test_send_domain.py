"""Mail's send path without HTTP: a typed ``Draft`` in, ``MailError`` out (the flows' way in);
the API's JSON parser builds the same ``Draft`` (``tau.mail.api_draft``)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from tau.http.errors import HttpError
from tau.mail import compose
from tau.mail.api_draft import parse_draft
from tau.mail.errors import InvalidMessage, MailError


def _draft(**kw: Any) -> compose.Draft:
    return compose.Draft(kw.pop("to", ["bob@example.org"]), [], [], kw.pop("subject", "hi"), "text", None, **kw)


def test_check_refuses_what_the_api_refuses() -> None:
    compose.check(_draft())
    for draft, code in ((_draft(to=[]), "no_recipients"), (_draft(to=["not an address"]), "invalid_address"),
                        (_draft(subject="a\r\nBcc: x@y.z"), "invalid_request"),
                        (_draft(to=[f"u{i}@example.org" for i in range(101)]), "too_many_recipients")):
        with pytest.raises(InvalidMessage) as info:
            compose.check(draft)
        assert (info.value.status, info.value.code) == (400, code)


def test_api_parser_builds_a_typed_draft() -> None:
    draft = parse_draft({"to": "Bob <bob@example.org>", "subject": "s", "text": "t",
                         "attachments": [{"filename": "a.txt", "content_base64": "eA=="}, {"file_id": 7}]})
    assert draft.to == ["bob@example.org"]
    inline, stored = draft.attachments
    assert (inline.filename, inline.base64, inline.file_id) == ("a.txt", "eA==", compose.ABSENT)
    assert (stored.file_id, stored.base64) == (7, compose.ABSENT)
    with pytest.raises(HttpError) as info:
        parse_draft({"to": ["nope"]})
    assert (info.value.status, info.value.code) == (400, "invalid_address")


def _run(coro: Any) -> Any:
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("the coroutine waited")


def test_attachments_take_bytes_and_need_a_file_source_for_file_ids() -> None:
    registry = SimpleNamespace(attachment_files=None)
    att = _run(compose.attachment_source(registry, None, compose.AttachmentInput("a.txt", "text/plain", b"x")))
    assert (att.filename, att.data) == ("a.txt", b"x")
    with pytest.raises(MailError) as info:   # no ``registry.attachment_files`` to read TauCloud files from
        _run(compose.attachment_source(registry, None, compose.AttachmentInput(file_id=3)))
    assert info.value.code == "file_attachments_unavailable"


def test_mail_does_not_import_files() -> None:
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "tau" / "mail"
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            assert not any(n == "tau.files" or n.startswith("tau.files.") for n in names), path
