"""Malformed input never raises and yields something sane (RFC 2045 5.2
defaults, RFC 2046 5.1.1 boundary handling), plus size/time bounds."""

import base64
import random
import time
import tracemalloc

from tau.mail.mime import parse_message, part_by_section, section_range
from tau.mail.mime.tree import MAX_DEPTH


def crlf(s: str | bytes) -> bytes:
    if isinstance(s, str):
        s = s.encode("utf-8")
    return s.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def sections(p):
    return [x.section for x in p.parts]


def test_missing_closing_boundary(check):
    raw = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b\n\ntwo\n")
    p = parse_message(raw)
    check(p)
    assert sections(p) == ["", "1", "2"]
    two = part_by_section(p, "2")
    assert raw[two.body_start : two.end] == b"two\r\n"
    assert two.end == len(raw)


def test_boundary_never_appears(check):
    raw = crlf("Content-Type: multipart/mixed; boundary=nothere\n\njust text\n")
    p = parse_message(raw)
    check(p)
    assert sections(p) == ["", "1"]
    one = part_by_section(p, "1")
    assert one.content_type == "text/plain"
    assert raw[one.body_start : one.end] == b"just text\r\n"
    assert p.body.endswith(' "MIXED")')


def test_multipart_without_boundary_param_is_text(check):
    p = parse_message(crlf("Content-Type: multipart/mixed\n\nhello\n"))
    check(p)
    assert p.parts[0].content_type == "text/plain"
    assert p.body.startswith('("TEXT" "PLAIN" ("CHARSET" "US-ASCII")')


def test_boundary_prefix_lines_are_not_delimiters():
    raw = crlf(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n\n--bogus\n --b\nx--b\n--b  \n\nsecond\n--b--  \n"
    )
    p = parse_message(raw)
    one = part_by_section(p, "1")
    assert raw[one.body_start : one.end] == b"--bogus\r\n --b\r\nx--b"
    two = part_by_section(p, "2")
    assert raw[two.body_start : two.end] == b"second"


def test_deep_nesting_is_capped(check):
    depth = 200
    raw = (
        b"".join(
            b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
            for i in range(depth)
        )
        + b"\r\nleaf\r\n"
    )
    p = parse_message(raw)
    check(p)
    assert max(len(x.section.split(".")) for x in p.parts) == MAX_DEPTH
    assert p.parts[-1].content_type == "application/octet-stream"
    deep_msg = b"Content-Type: message/rfc822\r\n\r\n" * 200 + b"x"
    p = parse_message(deep_msg)
    check(p)
    assert len(p.parts) < 60


def test_nul_bytes(check, imap_parse):
    raw = b"Subject: a\x00b\r\nFrom: x\x00@y.test\r\n\r\nbo\x00dy\r\n"
    p = parse_message(raw)
    check(p)
    assert imap_parse(p.envelope)[1] == "ab"
    assert "\x00" not in p.envelope
    assert p.size == len(raw)


def test_8bit_garbage_headers(check):
    raw = b"Subject: \xff\xfe\xfd\r\nFrom: \x80\x81 <a@b.c>\r\nX-\xe9: v\r\n\r\nbody"
    p = parse_message(raw)
    check(p)
    assert p.subject == "\xff\xfe\xfd"
    assert p.from_addrs == ("a@b.c",)


def test_header_without_colon_starts_body(check):
    raw = crlf("Subject: x\nthis line has no colon\nFrom: a@b.c\n\nrest\n")
    p = parse_message(raw)
    check(p)
    assert p.subject == "x"
    assert p.from_addrs == ()
    one = part_by_section(p, "1")
    assert raw[one.body_start :].startswith(b"this line has no colon")


def test_empty_message(check):
    p = parse_message(b"")
    check(p)
    assert p.size == 0
    assert p.envelope == "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
    assert p.body == '("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 0 0)'
    assert section_range(p, "", "") == (0, 0)
    assert section_range(p, "1", "") == (0, 0)


def test_no_header_body_separator(check):
    p = parse_message(b"Subject: s\r\nFrom: a@b.c")
    check(p)
    assert p.subject == "s" and p.from_addrs == ("a@b.c",)
    p = parse_message(b"no header at all, just words\r\nmore\r\n")
    check(p)
    assert p.envelope == "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
    assert part_by_section(p, "1").body_start == 0
    assert "just words" in p.preview


def test_body_starting_with_blank_line():
    raw = b"\r\nbody only\r\n"
    p = parse_message(raw)
    assert section_range(p, "", "HEADER") == (0, 2)
    assert raw[slice(*section_range(p, "", "TEXT"))] == b"body only\r\n"


def test_garbage_content_type(check, imap_parse):
    for ct in [
        "garbage",
        "text",
        "/plain",
        "text/",
        "te xt/plain",
        "text/plain junk",
        ";;;",
        "\x80/\x81",
    ]:
        raw = b"Content-Type: " + ct.encode("latin-1") + b"\r\n\r\nhello"
        p = parse_message(raw)
        check(p)
        assert p.parts[1].content_type == "text/plain", ct
        assert imap_parse(p.body)[:3] == ["TEXT", "PLAIN", ["CHARSET", "US-ASCII"]]


def test_weird_but_valid_params(check, imap_parse):
    raw = b'Content-Type: text/plain; charset="utf\\"8"; ; =x; junk; a=; b="unterminated\r\n\r\nx'
    p = parse_message(raw)
    check(p)
    params = imap_parse(p.body)[2]
    assert params[:2] == ["CHARSET", 'utf"8']


def test_unknown_charset_decodes_with_replacement():
    raw = crlf("Content-Type: text/plain; charset=x-no-such-charset\n\nab\xe9cd")
    raw = b"Content-Type: text/plain; charset=x-no-such-charset\r\n\r\nab\xe9cd"
    p = parse_message(raw)
    assert p.preview == "ab\ufffdcd"
    p = parse_message(b"Content-Type: text/plain; charset=zlib\r\n\r\nplain")
    assert p.preview == "plain"
    p = parse_message(b"Content-Type: text/plain; charset=punycode\r\n\r\nplain")
    assert p.preview == "plain"


def test_bad_transfer_encodings():
    p = parse_message(
        b"Content-Transfer-Encoding: base64\r\n\r\n!!!notbase64***\r\nQUJD=\r\n"
    )
    assert isinstance(p.preview, str)
    p = parse_message(
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n=ZZ=\r\nabc=4"
    )
    assert "abc" in p.preview
    p = parse_message(b"Content-Transfer-Encoding: x-uuencode\r\n\r\nraw")
    assert p.preview == "raw"
    assert '"X-UUENCODE"' in p.body


def test_huge_headers(check):
    raw = (
        b"Subject: "
        + b"x" * 3_000_000
        + b"\r\n"
        + b"X-Many: a\r\n" * 20000
        + b"\r\nbody"
    )
    t = time.perf_counter()
    p = parse_message(raw)
    assert time.perf_counter() - t < 5
    check(p)
    assert raw[slice(*section_range(p, "", "TEXT"))] == b"body"


def test_bare_cr_and_odd_line_endings(check):
    for raw in [
        b"Subject: a\rb\r\n\r\nx",
        b"Subject: a\n\rb\n\nx",
        b"\r",
        b"\n",
        b"\r\n\r\n",
        b"a",
        b":",
    ]:
        p = parse_message(raw)
        check(p)


def test_fuzz_never_raises(check):
    base = crlf(
        'From: "A" <a@b.c>, G: x@y.z;\nTo: <@r:u@h>\nSubject: =?utf-8?b?w6k=?=\n'
        "Content-Type: multipart/mixed; boundary=o\n\n"
        "--o\nContent-Type: message/rfc822\n\nSubject: in\n"
        "Content-Type: multipart/alternative; boundary=i\n\n--i\n\nt\n--i\n"
        "Content-Type: text/html; charset=iso-8859-1\nContent-Transfer-Encoding: base64\n\nPGI+aGk8L2I+\n--i--\n"
        "--o\nContent-Type: text/plain; name*0*=utf-8''a; name*1=b\n"
        "Content-Disposition: inline; filename=x\n\nbody\n--o--\n"
    )
    rng = random.Random(1234)
    alphabet = b'\r\n\x00\x80\xff-:;="<>()@,\\ \tabo'
    for _ in range(600):
        data = bytearray(base)
        for _ in range(rng.randint(1, 12)):
            op = rng.random()
            i = rng.randrange(len(data) + 1)
            if op < 0.4 and data:
                del data[i : i + rng.randint(1, 8)]
            elif op < 0.8:
                data[i:i] = bytes(
                    rng.choice(alphabet) for _ in range(rng.randint(1, 4))
                )
            else:
                j = rng.randrange(len(data) + 1)
                data[i:i] = data[j : j + rng.randint(1, 40)]
        raw = bytes(data)
        p = parse_message(raw)
        check(p)
        for part in p.parts:
            assert 0 <= part.header_start <= part.body_start <= part.end <= len(raw)
            for spec in ("", "MIME", "HEADER", "TEXT"):
                r = section_range(p, part.section, spec)
                assert r is None or 0 <= r[0] <= r[1] <= len(raw)


def test_10kb_message_is_fast():
    text = (b"Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n") * 90
    raw = (
        crlf(
            "From: Fred <fred@example.test>\nTo: a@b.c, d@e.f\nSubject: perf\n"
            "Date: Tue, 1 Jul 2003 10:52:37 +0200\nMessage-ID: <x@y>\n"
            "Content-Type: multipart/alternative; boundary=b\n\n--b\n"
            "Content-Type: text/plain; charset=utf-8\n\n"
        )
        + text
        + crlf("--b\nContent-Type: text/html\n\n")
        + b"<p>"
        + text
        + b"</p>\r\n--b--\r\n"
    )
    assert 9_000 < len(raw) < 12_000
    parse_message(raw)
    n = 50
    t = time.perf_counter()
    for _ in range(n):
        parse_message(raw)
    per = (time.perf_counter() - t) / n
    assert per < 0.01, per  # target is < 2 ms; generous bound for slow CI


def test_25mb_message_memory_and_time():
    att = base64.encodebytes(b"\x00\x01\x02\x03" * 4_500_000).replace(b"\n", b"\r\n")
    raw = (
        crlf(
            "From: a@b.c\nSubject: big\nContent-Type: multipart/mixed; boundary=b\n\n"
            "--b\nContent-Type: text/plain\n\nsee attachment\n"
            "--b\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"
        )
        + att
        + b"\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
        + b"more text\r\n" * 200_000
        + b"--b--\r\n"
    )
    assert len(raw) > 25_000_000
    tracemalloc.start()
    try:
        t = time.perf_counter()
        p = parse_message(raw)
        elapsed = time.perf_counter() - t
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * len(raw), peak
    assert elapsed < 20, elapsed
    assert [x.section for x in p.parts] == ["", "1", "2", "3"]
    assert p.preview == "see attachment"
    two = part_by_section(p, "2")
    assert two.end - two.body_start == len(att)
    assert len(p.text_for_search) <= 1_000_000
