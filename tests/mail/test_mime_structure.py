"""BODY / BODYSTRUCTURE, section numbering and BODY[section] ranges
(RFC 3501 6.4.5, 7.4.2)."""

from tau.mail.mime import (
    filter_header_fields,
    parse_message,
    part_by_section,
    section_range,
)


def crlf(s: str | bytes) -> bytes:
    if isinstance(s, str):
        s = s.encode("utf-8")
    return s.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def test_simple_text_message(check):
    raw = crlf("Subject: hi\nContent-Type: text/plain; charset=utf-8\n\nHello\nworld\n")
    p = parse_message(raw)
    # body = "Hello\r\nworld\r\n": 14 octets, 2 lines
    assert p.body == '("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 14 2)'
    assert (
        p.bodystructure
        == '("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 14 2 NIL NIL NIL NIL)'
    )
    assert p.size == len(raw)
    assert [x.section for x in p.parts] == ["", "1"]
    one = part_by_section(p, "1")
    assert raw[one.body_start : one.end] == b"Hello\r\nworld\r\n"
    assert one.header_start == 0 and one.content_type == "text/plain"
    assert p.preview == "Hello world"
    check(p)


def test_no_content_type_defaults_to_us_ascii():
    p = parse_message(b"Subject: x\r\n\r\nab")
    assert p.body == '("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 2 1)'


def test_multipart_alternative(check):
    raw = crlf(
        "From: a@b.c\n"
        'Content-Type: multipart/alternative; boundary="XX"\n'
        "\n"
        "--XX\n"
        "Content-Type: text/plain; charset=us-ascii\n"
        "\n"
        "plain text\n"
        "--XX\n"
        "Content-Type: text/html; charset=us-ascii\n"
        "Content-Transfer-Encoding: quoted-printable\n"
        "\n"
        "<p>html=20text</p>\n"
        "\n"
        "--XX--\n"
    )
    p = parse_message(raw)
    # part 1 body "plain text" (10, 1 line: the CRLF before --XX belongs to
    # the delimiter); part 2 body "<p>html=20text</p>\r\n" (20, 1 line)
    assert p.body == (
        '(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 10 1)'
        '("TEXT" "HTML" ("CHARSET" "us-ascii") NIL NIL "QUOTED-PRINTABLE" 20 1) "ALTERNATIVE")'
    )
    assert p.bodystructure == (
        '(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 10 1 NIL NIL NIL NIL)'
        '("TEXT" "HTML" ("CHARSET" "us-ascii") NIL NIL "QUOTED-PRINTABLE" 20 1 NIL NIL NIL NIL)'
        ' "ALTERNATIVE" ("BOUNDARY" "XX") NIL NIL NIL)'
    )
    assert [x.section for x in p.parts] == ["", "1", "2"]
    assert p.preview == "plain text"
    assert "html text" in p.text_for_search and "plain text" in p.text_for_search
    check(p)


MIXED = crlf(
    "From: Fred <fred@example.test>\n"
    "To: joe@example.test\n"
    "Subject: mixed\n"
    "Content-Type: multipart/mixed; boundary=outer\n"
    "\n"
    "This is the preamble.\n"
    "--outer\n"
    "Content-Type: text/plain\n"
    "\n"
    "Body one\n"
    "--outer\n"
    "Content-Type: message/rfc822\n"
    "Content-Description: forwarded\n"
    "\n"
    "From: inner@example.test\n"
    "Subject: inner subject\n"
    'Content-Type: multipart/alternative; boundary="in ner"\n'
    "\n"
    "--in ner\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "\n"
    "inner plain\n"
    "--in ner\n"
    "Content-Type: text/html\n"
    "\n"
    "<b>inner</b>\n"
    "--in ner--\n"
    "--outer\n"
    'Content-Type: application/pdf; name="doc.pdf"\n'
    "Content-Transfer-Encoding: base64\n"
    'Content-Disposition: attachment; filename="doc.pdf"\n'
    "Content-ID: <pdf@x>\n"
    "Content-Language: en, de\n"
    "Content-Location: http://x.test/doc.pdf\n"
    "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n"
    "\n"
    "JVBERi0xLjQK\n"
    "--outer--\n"
    "epilogue\n"
)


def test_mixed_with_nested_message(check, imap_parse):
    p = parse_message(MIXED)
    check(p)
    assert [(x.section, x.content_type) for x in p.parts] == [
        ("", "multipart/mixed"),
        ("1", "text/plain"),
        ("2", "message/rfc822"),
        ("2.1", "text/plain"),
        ("2.2", "text/html"),
        ("3", "application/pdf"),
    ]
    two = part_by_section(p, "2")
    assert two.is_message_rfc822 and two.inner_body_start > two.body_start
    inner = MIXED[two.body_start : two.end]
    assert inner.startswith(b"From: inner@example.test\r\n")
    assert inner.endswith(b"--in ner--")

    bs = imap_parse(p.bodystructure)
    assert bs[-5:] == ["MIXED", ["BOUNDARY", "outer"], None, None, None]
    t1, msg, pdf = bs[0], bs[1], bs[2]
    assert t1 == [
        "TEXT",
        "PLAIN",
        ["CHARSET", "US-ASCII"],
        None,
        None,
        "7BIT",
        8,
        1,
        None,
        None,
        None,
        None,
    ]
    assert msg[:7] == ["MESSAGE", "RFC822", None, None, "forwarded", "7BIT", len(inner)]
    assert msg[7][1] == "inner subject"
    assert msg[7][2] == [[None, None, "inner", "example.test"]]
    assert msg[8][-5] == "ALTERNATIVE"
    assert msg[8][0][:8] == [
        "TEXT",
        "PLAIN",
        ["CHARSET", "utf-8"],
        None,
        None,
        "7BIT",
        11,
        1,
    ]
    assert msg[9] == inner.count(b"\n") + 1  # last line has no CRLF
    assert pdf == [
        "APPLICATION",
        "PDF",
        ["NAME", "doc.pdf"],
        "<pdf@x>",
        None,
        "BASE64",
        12,
        "Q2hlY2sgSW50ZWdyaXR5IQ==",
        ["ATTACHMENT", ["FILENAME", "doc.pdf"]],
        ["en", "de"],
        "http://x.test/doc.pdf",
    ]
    body = imap_parse(p.body)
    assert body[-1] == "MIXED" and len(body[2]) == 7


def test_section_ranges_nested(check):
    p = parse_message(MIXED)

    def r(sec: str, spec: str = "") -> bytes:
        return MIXED[slice(*section_range(p, sec, spec))]

    assert r("") == MIXED
    assert r("", "HEADER").startswith(b"From: Fred") and r("", "HEADER").endswith(
        b"boundary=outer\r\n\r\n"
    )
    assert r("", "TEXT").startswith(b"This is the preamble.") and r(
        "", "TEXT"
    ).endswith(b"epilogue\r\n")
    assert r("1") == b"Body one"
    assert r("1", "MIME") == b"Content-Type: text/plain\r\n\r\n"
    assert (
        r("2", "MIME")
        == b"Content-Type: message/rfc822\r\nContent-Description: forwarded\r\n\r\n"
    )
    assert r("2", "HEADER") == (
        b"From: inner@example.test\r\nSubject: inner subject\r\n"
        b'Content-Type: multipart/alternative; boundary="in ner"\r\n\r\n'
    )
    assert r("2", "TEXT").startswith(b"--in ner\r\n") and r("2", "TEXT").endswith(
        b"--in ner--"
    )
    assert r("2").startswith(b"From: inner@") and r("2") == r("2", "HEADER") + r(
        "2", "TEXT"
    )
    assert r("2.1") == b"inner plain"
    assert r("2.1", "MIME") == b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
    assert r("2.2") == b"<b>inner</b>"
    assert r("3") == b"JVBERi0xLjQK"
    assert r("2", "HEADER.FIELDS (SUBJECT)") == r("2", "HEADER")
    # HEADER/TEXT only apply to message/rfc822 parts; MIME not to the root
    assert section_range(p, "1", "HEADER") is None
    assert section_range(p, "3", "TEXT") is None
    assert section_range(p, "", "MIME") is None
    assert section_range(p, "4", "") is None
    assert section_range(p, "2.3", "") is None
    assert section_range(p, "1", "BOGUS") is None


def test_non_multipart_nested_message_numbering():
    raw = crlf(
        "Subject: outer\nContent-Type: message/rfc822\n\n"
        "Subject: inner\nContent-Type: text/plain\n\ninner body\n"
    )
    p = parse_message(raw)
    assert [(x.section, x.content_type) for x in p.parts] == [
        ("", "message/rfc822"),
        ("1", "message/rfc822"),
        ("1.1", "text/plain"),
    ]

    def r(sec: str, spec: str = "") -> bytes:
        return raw[slice(*section_range(p, sec, spec))]

    assert r("1", "HEADER") == b"Subject: inner\r\nContent-Type: text/plain\r\n\r\n"
    assert r("1", "TEXT") == r("1.1") == b"inner body\r\n"
    assert r("1.1", "MIME") == r("1", "HEADER")


def test_filter_header_fields():
    hdr = crlf("From: a@b.c\nSubject: one\n two\nX-Thing: y\nsubject: again\n\n")
    assert filter_header_fields(hdr, ["SUBJECT"], False) == crlf(
        "Subject: one\n two\nsubject: again\n\n"
    )
    assert filter_header_fields(hdr, ["subject", "x-thing"], True) == crlf(
        "From: a@b.c\n\n"
    )
    assert filter_header_fields(hdr, ["nothing"], False) == b"\r\n"
    # no blank line in the source: none added (RFC 3501 6.4.5)
    assert (
        filter_header_fields(b"From: a@b.c\r\nTo: d@e.f", ["to"], False) == b"To: d@e.f"
    )
    assert filter_header_fields(b"", ["to"], False) == b""
    # lines that are not fields survive only .NOT
    junk = b"From: a\r\nnot a field\r\n\r\n"
    assert filter_header_fields(junk, ["from"], False) == b"From: a\r\n\r\n"
    assert filter_header_fields(junk, ["from"], True) == b"not a field\r\n\r\n"


def test_digest_default_type(check):
    raw = crlf(
        "Content-Type: multipart/digest; boundary=d\n\n"
        "--d\n\nSubject: one\n\nfirst\n"
        "--d\nContent-Type: text/plain\n\nexplicit\n"
        "--d--\n"
    )
    p = parse_message(raw)
    assert [(x.section, x.content_type) for x in p.parts] == [
        ("", "multipart/digest"),
        ("1", "message/rfc822"),
        ("1.1", "text/plain"),
        ("2", "text/plain"),
    ]
    check(p)


def test_rfc2231_parameters(imap_parse):
    raw = crlf(
        "Content-Type: application/octet-stream;\n"
        ' name*0="very long ";\n name*1="name.txt"\n'
        "Content-Disposition: attachment;\n"
        " filename*0*=utf-8''%C3%A9t%C3%A9;\n filename*1*=.txt\n\nxx"
    )
    bs = imap_parse(parse_message(raw).bodystructure)
    assert bs[2] == ["NAME", "very long name.txt"]
    assert bs[8] == ["ATTACHMENT", ["FILENAME*", "utf-8''%C3%A9t%C3%A9.txt"]]


def test_bare_lf_counted_as_stored(check):
    raw = b"Subject: lf\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\nline1\nline2\n--b--\n"
    p = parse_message(raw)
    one = part_by_section(p, "1")
    assert raw[one.body_start : one.end] == b"line1\nline2"
    assert '"7BIT" 11 2)' in p.body
    check(p)


def test_base64_message_rfc822_is_opaque(check):
    raw = crlf(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n"
        "Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n"
        "U3ViamVjdDogeA0KDQp5\n--b--\n"
    )
    p = parse_message(raw)
    check(p)
    one = part_by_section(p, "1")
    assert not one.is_message_rfc822
    assert part_by_section(p, "1.1") is None
    assert section_range(p, "1", "HEADER") is None


def test_message_without_body():
    raw = b"Subject: only header\r\nFrom: a@b.c\r\n"
    p = parse_message(raw)
    assert section_range(p, "", "HEADER") == (0, len(raw))
    assert section_range(p, "", "TEXT") == (len(raw), len(raw))
    assert section_range(p, "1", "") == (len(raw), len(raw))
    assert p.body == '("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 0 0)'


def test_digest_garbage_content_type_is_text_plain():
    raw = crlf(
        "Content-Type: multipart/digest; boundary=d\n\n--d\nContent-Type: ???\n\nx\n--d--\n"
    )
    p = parse_message(raw)
    assert part_by_section(p, "1").content_type == "text/plain"
