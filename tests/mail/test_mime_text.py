"""Decoded text (preview, SEARCH BODY/TEXT) and JSON storage round trip."""

import json
from datetime import datetime

from tau.mail.mime import from_json, parse_message, part_by_section, to_json
from tau.mail.mime.text import html_to_text


def crlf(s: str | bytes) -> bytes:
    if isinstance(s, str):
        s = s.encode("utf-8")
    return s.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def test_preview_quoted_printable_latin1():
    raw = crlf(
        "Content-Type: text/plain; charset=iso-8859-1\n"
        "Content-Transfer-Encoding: quoted-printable\n\n"
        "Gr=FC=DFe,   soft=\nbreak\n\n\nnext"
    )
    p = parse_message(raw)
    assert p.preview == "Grüße, softbreak next"
    assert "Grüße" in p.text_for_search


def test_preview_base64_utf8_and_length_cap():
    text = ("héllo wörld " * 40).encode("utf-8")
    raw = b"Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    import base64

    raw += base64.encodebytes(text).replace(b"\n", b"\r\n")
    p = parse_message(raw)
    assert p.preview.startswith("héllo wörld héllo")
    assert len(p.preview) == 200


def test_preview_prefers_plain_then_html():
    raw = crlf(
        "Content-Type: multipart/alternative; boundary=b\n\n"
        "--b\nContent-Type: text/html\n\n<html><head><title>T</title><style>p{}</style></head>"
        "<body><p>Hello&nbsp;<b>there</b> &amp; you</p><script>var x = '<p>';</script></body></html>\n"
        "--b--\n"
    )
    p = parse_message(raw)
    assert p.preview == "Hello there & you"  # NBSP collapses too
    raw2 = raw.replace(
        b"--b--", b"--b\r\nContent-Type: text/plain\r\n\r\nplain wins\r\n--b--"
    )
    assert parse_message(raw2).preview == "plain wins"


def test_preview_skips_attachments_and_attached_messages():
    raw = crlf(
        "Content-Type: multipart/mixed; boundary=b\n\n"
        "--b\nContent-Type: text/plain\nContent-Disposition: attachment; filename=a.txt\n\nattached\n"
        "--b\nContent-Type: message/rfc822\n\nSubject: in\n\ninner text\n"
        "--b\nContent-Type: image/png\n\nPNG\n--b--\n"
    )
    p = parse_message(raw)
    assert p.preview == ""
    assert "attached" in p.text_for_search and "inner text" in p.text_for_search
    assert "PNG" not in p.text_for_search


def test_html_to_text_is_robust():
    assert html_to_text("<p>a</p><!-- c -->b").split() == ["a", "b"]
    assert html_to_text("a <script>never closed").strip() == "a"
    assert html_to_text("x < y and y > z").strip() == "x < y and y > z"
    assert html_to_text("&lt;tag&gt; &#233;").strip() == "<tag> é"


def test_search_text_cap():
    raw = b"Content-Type: text/plain\r\n\r\n" + b"0123456789" * 300_000
    p = parse_message(raw)
    assert len(p.text_for_search) == 1_000_000


def test_to_json_round_trip():
    raw = crlf(
        b'From: =?utf-8?q?J=C3=B6rg?= <j@x.test>\nTo: G: a@b.c;\nSubject: caf\xe9 "q"\n'
        b"Date: Tue, 1 Jul 2003 10:52:37 +0200\nMessage-ID: <m@x>\nIn-Reply-To: <p@x>\n"
        b"Content-Type: multipart/mixed; boundary=b\n\n--b\n\nhi \xff\xfe\n--b\n"
        b"Content-Type: message/rfc822\n\nSubject: in\n\nx\n--b--\n"
    )
    p = parse_message(raw)
    s = to_json(p)
    assert isinstance(s, str) and s.isascii()
    json.loads(s)
    q = from_json(s)
    assert q == p
    assert (
        isinstance(q.date, datetime)
        and q.date == p.date
        and q.date.utcoffset() == p.date.utcoffset()
    )
    assert (
        part_by_section(q, "2").inner_body_start
        == part_by_section(p, "2").inner_body_start
    )
    assert q.from_addrs == ("j@x.test",)
    none = parse_message(b"")
    assert from_json(to_json(none)) == none


def test_text_is_database_safe():
    # NUL in body, lone surrogate from UTF-7, NUL from an encoded word
    raw = (
        b"Subject: =?utf-8?q?a=00b?= =?utf-7?q?+2D3-?=\r\n"
        b"Content-Type: text/plain; charset=utf-7\r\n\r\nx\x00y +2D3-"
    )
    p = parse_message(raw)
    for s in (p.subject, p.preview, p.text_for_search, *(v for _, v in p.headers)):
        assert "\x00" not in s
        s.encode("utf-8")  # no lone surrogates
    assert p.subject.startswith("ab")
    assert p.preview.startswith("xy")
