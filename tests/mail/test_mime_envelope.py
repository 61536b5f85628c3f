"""ENVELOPE rendering, address parsing, quoting (RFC 3501 7.4.2)."""

from tau.mail.mime import parse_message
from tau.mail.mime.address import parse_address_list
from tau.mail.mime.imapstr import nstring


def crlf(s: str | bytes) -> bytes:
    if isinstance(s, str):
        s = s.encode("utf-8")
    return s.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


RFC3501_HEADER = crlf(
    "Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\n"
    "From: Terry Gray <gray@cac.washington.edu>\n"
    "Subject: IMAP4rev1 WG mtg summary and minutes\n"
    "To: imap@cac.washington.edu\n"
    "cc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>\n"
    "Message-Id: <B27397-0100000@cac.washington.edu>\n"
    "MIME-Version: 1.0\n"
    "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\n"
    "\n"
)


def test_rfc3501_example_envelope(check):
    p = parse_message(RFC3501_HEADER + b"body\r\n")
    # RFC 3501 section 7.4.2 example (addresses are not space-separated,
    # per the formal syntax "(" 1*address ")").
    assert p.envelope == (
        '("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" '
        '"IMAP4rev1 WG mtg summary and minutes" '
        '(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        '(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        '(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        '((NIL NIL "imap" "cac.washington.edu")) '
        '((NIL NIL "minutes" "CNRI.Reston.VA.US")'
        '("John Klensin" NIL "KLENSIN" "MIT.EDU")) '
        "NIL NIL "
        '"<B27397-0100000@cac.washington.edu>")'
    )
    check(p)
    assert p.from_addrs == ("gray@cac.washington.edu",)
    assert p.cc_addrs == ("minutes@cnri.reston.va.us", "klensin@mit.edu")
    assert p.message_id == "<B27397-0100000@cac.washington.edu>"
    assert p.date is not None and p.date.utcoffset().total_seconds() == -7 * 3600
    assert (p.date.year, p.date.month, p.date.day, p.date.hour) == (1996, 7, 17, 2)


def test_sender_and_reply_to_explicit(imap_parse):
    raw = crlf(
        "From: a@x.test\nSender: s@x.test\nReply-To: r@x.test\nBcc: b@x.test\n"
        "In-Reply-To: <parent@x.test>\n\nhi\n"
    )
    p = parse_message(raw)
    env = imap_parse(p.envelope)
    assert env[2] == [[None, None, "a", "x.test"]]
    assert env[3] == [[None, None, "s", "x.test"]]
    assert env[4] == [[None, None, "r", "x.test"]]
    assert env[7] == [[None, None, "b", "x.test"]]
    assert env[8] == "<parent@x.test>"
    assert p.in_reply_to == "<parent@x.test>"
    assert p.bcc_addrs == ("b@x.test",)


def test_empty_sender_defaults_to_from(imap_parse):
    p = parse_message(crlf("From: a@x.test\nSender:\nReply-To: \n\nhi\n"))
    env = imap_parse(p.envelope)
    assert env[3] == env[2] == env[4] == [[None, None, "a", "x.test"]]


def test_missing_everything_is_nil():
    p = parse_message(crlf("X-Foo: bar\n\nbody\n"))
    assert p.envelope == "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
    assert p.subject == ""
    assert p.message_id is None and p.date is None


def test_group_syntax(imap_parse, check):
    raw = crlf(
        "From: a@x.test\n"
        "To: A Group:Chris Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;\n"
        "Cc: undisclosed-recipients:;\n\nx\n"
    )
    p = parse_message(raw)
    env = imap_parse(p.envelope)
    assert env[5] == [
        [None, None, "A Group", None],
        ["Chris Jones", None, "c", "a.test"],
        [None, None, "joe", "where.test"],
        ["John", None, "jdoe", "one.test"],
        [None, None, None, None],
    ]
    assert env[6] == [
        [None, None, "undisclosed-recipients", None],
        [None, None, None, None],
    ]
    assert p.to_addrs == ("c@a.test", "joe@where.test", "jdoe@one.test")
    assert p.cc_addrs == ()
    check(p)


def test_unterminated_group_is_closed():
    assert parse_address_list("G: a@b.c") == [
        (None, None, "G", None),
        (None, None, "a", "b.c"),
        (None, None, None, None),
    ]


def test_address_forms():
    f = parse_address_list
    assert f("a@b.c (Comment Name)") == [("Comment Name", None, "a", "b.c")]
    assert f('"Last, First" <f.l@x.test>') == [("Last, First", None, "f.l", "x.test")]
    assert f("<@r1.test,@r2.test:u@h.test>") == [
        (None, "@r1.test,@r2.test", "u", "h.test")
    ]
    assert f('"john doe"@x.test') == [(None, None, '"john doe"', "x.test")]
    assert f("root") == [(None, None, "root", "")]
    assert f("John Q. Public <jqp@x.test>") == [
        ("John Q. Public", None, "jqp", "x.test")
    ]
    assert f("John Doe john@x.test") == [("John Doe", None, "john", "x.test")]
    assert f("a@[10.0.0.1]") == [(None, None, "a", "[10.0.0.1]")]
    assert f("a@b.c,, ,d@e.f") == [(None, None, "a", "b.c"), (None, None, "d", "e.f")]
    assert f("=?utf-8?q?J=C3=B6rg?= <j@x.test>") == [
        ("=?utf-8?q?J=C3=B6rg?=", None, "j", "x.test")
    ]


def test_garbage_addresses_never_raise():
    for junk in [
        "<<<>>>",
        '"unterminated',
        "(((",
        "@@@",
        ";;;:::",
        "a@",
        "@b",
        "<a@b",
        ">",
        "\\",
        "[",
        "a <b@c> d <e@f>",
    ]:
        out = parse_address_list(junk)
        assert isinstance(out, list)
        for a in out:
            assert len(a) == 4


def test_encoded_words_raw_in_envelope_decoded_in_subject(imap_parse):
    raw = crlf(
        "From: =?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?= <keld@dkuug.dk>\n"
        "Subject: =?utf-8?q?Caf=C3=A9?= =?utf-8?b?IGF1IGxhaXQ=?=\n\nx\n"
    )
    p = parse_message(raw)
    env = imap_parse(p.envelope)
    assert env[1] == "=?utf-8?q?Caf=C3=A9?= =?utf-8?b?IGF1IGxhaXQ=?="
    assert env[2][0][0] == "=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?="
    assert p.subject == "Café au lait"
    assert ("from", "Keld Jørn Simonsen <keld@dkuug.dk>") in p.headers
    assert ("subject", "Café au lait") in p.headers


def test_encoded_word_split_multibyte_and_unknown_charset():
    # "é" = C3 A9 split across two adjacent encoded words
    p = parse_message(
        b"Subject: =?utf-8?b?w6k=?= =?utf-8?q?=C3?= =?utf-8?q?=A9?=\r\n\r\n"
    )
    assert p.subject == "éé"
    p = parse_message(b"Subject: =?x-bogus?q?ab=FFc?= tail\r\n\r\n")
    assert p.subject.startswith("ab") and p.subject.endswith("c tail")


def test_quoting_of_quote_and_backslash(imap_parse):
    p = parse_message(
        crlf('Subject: say "hi" \\ bye\nFrom: "a \\"b\\" \\\\c" <x@y.test>\n\n')
    )
    assert '"say \\"hi\\" \\\\ bye"' in p.envelope
    env = imap_parse(p.envelope)
    assert env[1] == 'say "hi" \\ bye'
    assert env[2][0][0] == 'a "b" \\c'


def test_8bit_headers_become_literals(imap_parse, check):
    subj = "Grüße aus Köln"
    p = parse_message(
        b"Subject: "
        + subj.encode("utf-8")
        + b"\r\nFrom: J\xc3\xb6rg <j@x.test>\r\n\r\nx"
    )
    n = len(subj.encode("utf-8"))
    assert f"{{{n}}}\r\n{subj}" in p.envelope
    env = imap_parse(p.envelope)
    assert env[1] == subj
    assert env[2][0][0] == "Jörg"
    assert p.subject == subj
    check(p)
    # Latin-1 bytes that are not UTF-8 are read as Latin-1
    p = parse_message(b"Subject: caf\xe9\r\n\r\nx")
    assert p.subject == "café"
    assert imap_parse(p.envelope)[1] == "café"


def test_long_value_becomes_literal(imap_parse):
    subj = "x" * 1500
    p = parse_message(f"Subject: {subj}\r\n\r\n".encode())
    assert "{1500}\r\n" in p.envelope
    assert imap_parse(p.envelope)[1] == subj


def test_folded_header_is_unfolded(imap_parse):
    p = parse_message(b"Subject: a long\r\n  subject\r\n\tline\r\n\r\n")
    assert imap_parse(p.envelope)[1] == "a long  subject\tline"
    assert p.subject == "a long  subject\tline"


def test_nstring():
    assert nstring(None) == "NIL"
    assert nstring("") == '""'
    assert nstring('a"b\\c') == '"a\\"b\\\\c"'
    assert nstring("é") == "{2}\r\né"
    assert nstring("a\r\nb") == "{4}\r\na\r\nb"
    assert nstring("a\x00b") == '"ab"'


def test_duplicate_headers_first_wins(imap_parse):
    p = parse_message(crlf("Subject: one\nSubject: two\nFrom: a@b.c\nFrom: d@e.f\n\n"))
    env = imap_parse(p.envelope)
    assert env[1] == "one"
    assert env[2] == [[None, None, "a", "b.c"]]
    assert p.subject == "one"
    assert [v for n, v in p.headers if n == "subject"] == ["one", "two"]


def test_date_parsing():
    assert parse_message(b"Date: garbage\r\n\r\n").date is None
    d = parse_message(b"Date: Tue, 1 Jul 2003 10:52:37 -0000\r\n\r\n").date
    assert d is not None and d.tzinfo is not None
    odd = parse_message(b"Date: Tue, 1 Jul 2003 10:52:37 +9999\r\n\r\n").date
    assert odd is None or odd.tzinfo is not None
