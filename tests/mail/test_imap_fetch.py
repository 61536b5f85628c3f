"""FETCH / UID FETCH (RFC 3501 §6.4.5, §6.4.8, §7.4.2; RFC 7162 MODSEQ and CHANGEDSINCE):
metadata items, BODY[section]<partial> on nested MIME, PEEK and implicit \\Seen, malformed
messages, and reading only the bytes a section needs."""

from __future__ import annotations

import re

import pytest
from imapclient.response_parser import parse_fetch_response

from tau.mail.mime import parse_message
from tests.support.imap import IMAPEnv, message

ALICE = "alice@example.test"

NESTED = (
    b"From: Carol <carol@example.test>\r\n"
    b"To: alice@example.test\r\n"
    b"Subject: nested\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="outer"\r\n'
    b"\r\n"
    b"preamble\r\n"
    b"--outer\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"First part.\r\n"
    b"--outer\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"From: Dave <dave@example.test>\r\n"
    b"Subject: inner\r\n"
    b'Content-Type: multipart/alternative; boundary="inner"\r\n'
    b"\r\n"
    b"--inner\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"inner plain\r\n"
    b"--inner\r\n"
    b"Content-Type: text/html\r\n"
    b"\r\n"
    b"<p>inner html</p>\r\n"
    b"--inner--\r\n"
    b"--outer\r\n"
    b"Content-Type: application/octet-stream; name=blob.bin\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"Content-Disposition: attachment; filename=blob.bin\r\n"
    b"\r\n"
    b"AAECAwQFBgc=\r\n"
    b"--outer--\r\n"
)


@pytest.fixture
def env(registry):
    e = IMAPEnv(registry)
    e.add_user(ALICE)
    return e


def fetch(c, command: str) -> dict:
    """Run a FETCH and parse its responses the way imapclient does: {seq: {item: value}}."""
    out = c.send(command.encode() + b"\r\n")
    tag = command.split()[0].encode()
    assert re.search(rb"\r\n" + tag + rb" OK|^" + tag + rb" OK", out), out
    body = out[: out.rfind(tag + b" OK")]
    records, pos = [], 0
    lit = re.compile(rb"\{(\d+)\}\r\n")
    line_start = 0
    while pos < len(body):
        m = lit.search(body, pos)
        nl = body.find(b"\r\n", pos)
        if m and (nl < 0 or m.start() < nl):
            n = int(m.group(1))
            records.append((body[line_start:m.end() - 2], body[m.end():m.end() + n]))
            pos = line_start = m.end() + n
            continue
        records.append(body[line_start:nl])
        pos = line_start = nl + 2
    # imapclient wants "* 1 FETCH (" as imaplib delivers it: "1 ("
    def strip(b: bytes) -> bytes:
        return re.sub(rb"^\* (\d+) FETCH ", rb"\1 ", b)

    cleaned = [(strip(r[0]), r[1]) if isinstance(r, tuple) else strip(r) for r in records if r]
    return parse_fetch_response(cleaned, uid_is_key=False)


def test_header_sync_items(env):
    raw = message(1)
    env.append(ALICE, raw, flags=("\\Flagged", "$Work"), internal_date=837596665)
    c = env.client(ALICE, mailbox="INBOX")
    lines = c.ok("a FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)")
    env_str = parse_message(raw).envelope
    assert lines == [f'* 1 FETCH (UID 1 FLAGS (\\Flagged $Work) INTERNALDATE "17-Jul-1996 09:44:25 +0000" '
                     f"RFC822.SIZE {len(raw)} ENVELOPE {env_str})"]


def test_macros(env):
    env.append(ALICE, message(1))
    c = env.client(ALICE, mailbox="INBOX")
    assert re.match(r"\* 1 FETCH \(FLAGS \(\) INTERNALDATE \"[^\"]+\" RFC822\.SIZE \d+\)$", c.ok("a FETCH 1 FAST")[0])
    assert " ENVELOPE (" in c.ok("b FETCH 1 ALL")[0]
    full = c.ok("c FETCH 1 FULL")[0]
    assert " ENVELOPE (" in full and ' BODY ("TEXT" "PLAIN"' in full


def test_bodystructure_of_nested_mime(env):
    env.append(ALICE, NESTED)
    c = env.client(ALICE, mailbox="INBOX")
    parsed = parse_message(NESTED)
    assert c.ok("a FETCH 1 (BODYSTRUCTURE)") == [f"* 1 FETCH (BODYSTRUCTURE {parsed.bodystructure})"]
    assert c.ok("b FETCH 1 (BODY)") == [f"* 1 FETCH (BODY {parsed.body})"]
    res = fetch(c, "c FETCH 1 (BODYSTRUCTURE ENVELOPE)")
    bs = res[1][b"BODYSTRUCTURE"]
    assert bs.is_multipart and bs[1] == b"MIXED"
    assert res[1][b"ENVELOPE"].subject == b"nested"


@pytest.mark.parametrize("section,expected", [
    ("", NESTED),
    ("HEADER", NESTED[: NESTED.index(b"\r\n\r\n") + 4]),
    ("TEXT", NESTED[NESTED.index(b"\r\n\r\n") + 4:]),
    ("1", b"First part."),
    ("1.MIME", b"Content-Type: text/plain; charset=utf-8\r\n\r\n"),
    ("2.HEADER", b"From: Dave <dave@example.test>\r\nSubject: inner\r\n"
                 b'Content-Type: multipart/alternative; boundary="inner"\r\n\r\n'),
    ("2.1", b"inner plain"),
    ("2.2", b"<p>inner html</p>"),
    ("2.2.MIME", b"Content-Type: text/html\r\n\r\n"),
    ("3", b"AAECAwQFBgc="),
    ("HEADER.FIELDS (SUBJECT to)", b"To: alice@example.test\r\nSubject: nested\r\n\r\n"),
    ("HEADER.FIELDS.NOT (From To Subject MIME-Version)",
     b'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n'),
    ("2.HEADER.FIELDS (Subject)", b"Subject: inner\r\n\r\n"),
])
def test_body_sections(env, section, expected):
    env.append(ALICE, NESTED)
    c = env.client(ALICE, mailbox="INBOX")
    res = fetch(c, f"a FETCH 1 (BODY.PEEK[{section}])")
    [(key, value)] = [(k, v) for k, v in res[1].items() if k.startswith(b"BODY[")]
    assert value == expected, key


def test_body_section_labels(env):
    env.append(ALICE, NESTED)
    c = env.client(ALICE, mailbox="INBOX")
    out = c.send(b"a FETCH 1 (BODY.PEEK[header.fields (subject \"X-Odd\")] BODY.PEEK[2.1]<2.5>)\r\n")
    assert b'BODY[HEADER.FIELDS (SUBJECT X-ODD)] {19}\r\nSubject: nested\r\n\r\n' in out
    assert b"BODY[2.1]<2> {5}\r\nner p" in out


def test_missing_section_is_nil(env):
    env.append(ALICE, message(1))
    c = env.client(ALICE, mailbox="INBOX")
    assert c.ok("a FETCH 1 (BODY.PEEK[4.2])") == ["* 1 FETCH (BODY[4.2] NIL)"]
    assert c.cmd("b FETCH 1 (BODY.PEEK[MIME])")[-1].startswith("b BAD")  # MIME needs a part number
    assert c.cmd("c FETCH 1 (BODY.PEEK[0])")[-1].startswith("c BAD")


def test_partials(env):
    raw = message(1)
    env.append(ALICE, raw)
    c = env.client(ALICE, mailbox="INBOX")
    assert fetch(c, "a FETCH 1 (BODY.PEEK[]<0.10>)")[1][b"BODY[]<0>"] == raw[:10]
    assert fetch(c, "b FETCH 1 (BODY.PEEK[]<5.10>)")[1][b"BODY[]<5>"] == raw[5:15]
    assert fetch(c, "c FETCH 1 (BODY.PEEK[]<100000.10>)")[1][b"BODY[]<100000>"] == b""
    assert fetch(c, "d FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)]<2.5>)")[1][
        b"BODY[HEADER.FIELDS (SUBJECT)]<2>"] == b"bject"
    assert c.cmd("e FETCH 1 (BODY.PEEK[]<1.0>)")[-1].startswith("e BAD")


def test_rfc822_items(env):
    raw = message(1)
    env.append(ALICE, raw)
    c = env.client(ALICE, mailbox="INBOX")
    res = fetch(c, "a FETCH 1 (RFC822.HEADER RFC822.SIZE)")[1]
    assert res[b"RFC822.HEADER"] == raw[: raw.index(b"\r\n\r\n") + 4]
    assert res[b"RFC822.SIZE"] == len(raw)
    assert b"\\Seen" not in fetch(c, "b FETCH 1 FLAGS")[1][b"FLAGS"]
    res = fetch(c, "c FETCH 1 (RFC822.TEXT)")[1]
    assert res[b"RFC822.TEXT"] == raw[raw.index(b"\r\n\r\n") + 4:]
    assert res[b"FLAGS"] == (b"\\Seen",)
    assert fetch(c, "d FETCH 1 RFC822")[1][b"RFC822"] == raw


def test_peek_leaves_unseen_and_body_sets_seen(env):
    env.append(ALICE, message(1))
    env.append(ALICE, message(2), flags=("\\Seen",))
    c = env.client(ALICE, mailbox="INBOX")
    assert "FLAGS" not in c.ok("a FETCH 1 (BODY.PEEK[TEXT])")[0]
    lines = c.send(b"b FETCH 1:2 (BODY[TEXT])\r\n").decode()
    assert "* 1 FETCH (FLAGS (\\Seen) BODY[TEXT] {" in lines
    assert "* 2 FETCH (FLAGS (\\Seen) BODY[TEXT] {" in lines  # FLAGS reported for both, as set
    assert c.ok("c FETCH 1 FLAGS") == ["* 1 FETCH (FLAGS (\\Seen))"]
    # another session sees the change as an unsolicited FETCH on its next command
    other = env.client(ALICE, mailbox="INBOX")
    assert other.ok("d NOOP") == []


def test_uid_fetch_always_returns_uid(env):
    for i in range(3):
        env.append(ALICE, message(i))
    c = env.client(ALICE, mailbox="INBOX")
    assert c.ok("a UID FETCH 2:3 FLAGS") == ["* 2 FETCH (UID 2 FLAGS ())", "* 3 FETCH (UID 3 FLAGS ())"]
    assert c.ok("b UID FETCH 7:9 FLAGS") == []  # no "*": nothing in range
    assert c.ok("c UID FETCH 10:* FLAGS") == ["* 3 FETCH (UID 3 FLAGS ())"]  # n:* includes the last
    assert c.ok("d UID FETCH 100 FLAGS") == []


def test_seq_numbers_past_the_end_are_ignored(env):
    env.append(ALICE, message(1))
    c = env.client(ALICE, mailbox="INBOX")
    assert c.ok("a FETCH 1:5 UID") == ["* 1 FETCH (UID 1)"]
    assert c.ok("b FETCH 9 UID") == []


def test_modseq_and_changedsince(env):
    for i in range(3):
        env.append(ALICE, message(i))
    c = env.client(ALICE, mailbox="INBOX")
    before = int(re.search(r"MODSEQ \((\d+)\)", c.ok("a FETCH 3 (MODSEQ)")[0]).group(1))
    assert c.proto.condstore
    lines = c.ok("b STORE 2 +FLAGS.SILENT (\\Flagged)")
    assert lines and "MODSEQ" in lines[0]  # CONDSTORE: silent STORE still reports MODSEQ
    changed = c.ok(f"c FETCH 1:* (FLAGS) (CHANGEDSINCE {before})")
    assert len(changed) == 1 and changed[0].startswith("* 2 FETCH (FLAGS (\\Flagged) MODSEQ (")
    assert c.ok(f"d UID FETCH 1:* (FLAGS) (CHANGEDSINCE {before})")[0].startswith("* 2 FETCH (UID 2 FLAGS")
    assert c.cmd("e FETCH 1 FLAGS (VANISHED)")[-1].startswith("e BAD")


@pytest.mark.parametrize("raw", [
    b"",
    b"no headers at all, just text without a blank line",
    b"\x00\x01\x02 binary \xff\xfe garbage \x00\r\n\r\n\x00",
    b"Subject: =?utf-8?B?broken\r\nFrom: <<<@@@>>>\r\nTo: ,,,\r\nDate: yesterday-ish\r\n\r\nbody",
    b'Content-Type: multipart/mixed; boundary="never"\r\n\r\nno parts here\r\n',
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n--b\r\n',
    "Subject: 8-bit Ümlaut header\r\nFrom: Jörg <jörg@example.test>\r\n\r\nbody é\r\n".encode(),
    b"Subject: long\r\n" + b"X-Long: " + b"a" * 20000 + b"\r\n\r\n" + b"b" * 3000,
])
def test_bad_malformed_messages_are_still_fetchable(env, raw):
    if not raw:
        raw = b"\r\n"
    env.append(ALICE, raw)
    c = env.client(ALICE, mailbox="INBOX")
    res = fetch(c, "a FETCH 1 (UID FLAGS RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY.PEEK[] "
                   "BODY.PEEK[HEADER] BODY.PEEK[1] BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])")
    assert res[1][b"BODY[]"] == raw.replace(b"\x00", b"\x80")  # no NUL in a literal (RFC 3501 §4.3)
    assert res[1][b"RFC822.SIZE"] == len(raw)


def test_part_fetch_reads_only_its_range(env, monkeypatch):
    big = b"x" * 300_000
    raw = NESTED.replace(b"AAECAwQFBgc=", big)
    env.append(ALICE, raw)
    c = env.client(ALICE, mailbox="INBOX")
    reads: list[tuple] = []
    sync = env.registry.blobs.sync
    real = sync.read

    def spy(key, start=0, end=None):
        reads.append((start, end))
        return real(key, start, end)

    monkeypatch.setattr(sync, "read", spy)
    res = fetch(c, "a FETCH 1 (BODY.PEEK[1] BODY.PEEK[2.1])")
    assert res[1][b"BODY[1]"] == b"First part." and res[1][b"BODY[2.1]"] == b"inner plain"
    assert reads and all(end is not None and end - start < 100 for start, end in reads)


def test_fetch_many_in_batches(env, monkeypatch):
    from tau.mail.imap import fetch as fetch_module

    monkeypatch.setattr(fetch_module, "BATCH", 7)
    monkeypatch.setattr(fetch_module, "BODY_BATCH", 3)
    for i in range(30):
        env.append(ALICE, message(i))
    c = env.client(ALICE, mailbox="INBOX")
    writes = []
    real_write = c.transport.write
    monkeypatch.setattr(c.transport, "write", lambda data: (writes.append(data), real_write(data)))
    out = c.send(b"a UID FETCH 1:* (UID FLAGS ENVELOPE)\r\n").decode()
    assert out.count(" FETCH (UID ") == 30 and out.endswith("a OK UID FETCH completed\r\n")
    assert len(writes) == 5 + 1  # ceil(30 / 7) batches and the tagged OK
    body = c.send(b"b FETCH 1:20 (BODY.PEEK[])\r\n")
    assert body.count(b" FETCH (BODY[] {") == 20
    assert [int(n) for n in re.findall(rb"\* (\d+) FETCH", body)] == list(range(1, 21))


def test_big_messages_are_streamed(env, monkeypatch):
    from tau.mail.imap import fetch as fetch_module

    monkeypatch.setattr(fetch_module, "STREAM_THRESHOLD", 100)
    env.append(ALICE, message(1))
    env.append(ALICE, NESTED)
    env.append(ALICE, message(3))
    c = env.client(ALICE, mailbox="INBOX")
    res = fetch(c, "a FETCH 1:3 (UID BODY.PEEK[] BODY.PEEK[1] BODY.PEEK[4] BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert res[2][b"BODY[]"] == NESTED and res[2][b"BODY[1]"] == b"First part." and res[2][b"BODY[4]"] is None
    assert res[2][b"BODY[HEADER.FIELDS (SUBJECT)]"] == b"Subject: nested\r\n\r\n"
    assert res[1][b"BODY[]"] == message(1) and res[3][b"BODY[]"] == message(3)
    assert fetch(c, "b FETCH 2 (BODY.PEEK[]<10.500>)")[2][b"BODY[]<10>"] == NESTED[10:510]


BINARY_MSG = (
    b"Subject: binary\r\n"
    b'Content-Type: multipart/mixed; boundary="z"\r\n\r\n'
    b"--z\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"caf=C3=A9 =3D ok\r\n"
    b"--z\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"AAECAwQFBgc=\r\n"
    b"--z\r\nContent-Type: application/x-odd\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n"
    b"begin 644 x\r\n"
    b"--z--\r\n"
)


def test_binary_fetch(env):
    env.append(ALICE, BINARY_MSG)
    c = env.client(ALICE, mailbox="INBOX")
    assert "BINARY" in c.ok("a CAPABILITY")[0].split()
    out = c.send(b"b FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[2] BINARY.PEEK[2]<1.3>)\r\n")
    assert "café = ok".encode() in out and b"BINARY[1] {10}\r\n" in out
    assert b"BINARY.SIZE[2] 8" in out
    assert b"BINARY[2]<1> {3}\r\n\x01\x02\x03" in out  # no NUL: a plain literal will do
    out = c.send(b"c FETCH 1 (BINARY.PEEK[2])\r\n")
    assert b"BINARY[2] ~{8}\r\n\x00\x01\x02\x03\x04\x05\x06\x07" in out
    assert c.cmd("d FETCH 1 (BINARY.PEEK[3])")[-1].startswith("d NO [UNKNOWN-CTE]")
    assert c.ok("e FETCH 1 (BINARY.PEEK[9])") == ["* 1 FETCH (BINARY[9] NIL)"]
    assert c.cmd("f FETCH 1 (BINARY.PEEK[1.HEADER])")[-1].startswith("f BAD")
    whole = c.send(b"g FETCH 1 (BINARY.PEEK[])\r\n")
    assert whole.startswith(b"* 1 FETCH (BINARY[] {%d}\r\n" % len(BINARY_MSG))
    assert "FLAGS ()" in c.ok("h FETCH 1 FLAGS")[0]
    assert b"FLAGS (\\Seen)" in c.send(b"i FETCH 1 (BINARY[1])\r\n")


def test_append_literal8(env):
    c = env.client(ALICE, mailbox="INBOX")
    raw = b"Subject: nul\r\n\r\nbin\x00ary\r\n"
    out = c.send(b"a APPEND INBOX ~{%d+}\r\n%s\r\n" % (len(raw), raw))
    assert b"a OK [APPENDUID" in out
    assert c.send(b"b FETCH 1 (BINARY.PEEK[])\r\n").startswith(b"* 1 FETCH (BINARY[] ~{%d}\r\n%s)" % (len(raw), raw))


def test_implicit_seen_reports_modseq_once_condstore_is_enabled(env):
    env.append(ALICE, message(1))
    env.append(ALICE, message(2))
    c = env.client(ALICE)
    c.ok("a ENABLE CONDSTORE")
    c.select()
    lines = c.ok("b FETCH 1 (BODY[])")
    assert re.match(r"\* 1 FETCH \(FLAGS \(\\Seen\) MODSEQ \(\d+\) BODY\[\] \{", lines[0])
    uid_lines = c.ok("c UID FETCH 2 (RFC822.SIZE BODY[TEXT])")
    assert re.match(r"\* 2 FETCH \(UID 2 RFC822\.SIZE \d+ FLAGS \(\\Seen\) MODSEQ \(\d+\) BODY\[TEXT\] \{",
                    uid_lines[0])
    new_modseq = int(re.search(r"MODSEQ \((\d+)\)", lines[0]).group(1))
    assert c.ok("d FETCH 1 (MODSEQ)") == [f"* 1 FETCH (MODSEQ ({new_modseq}))"]  # what the store holds


def test_implicit_seen_without_condstore_has_no_modseq(env):
    env.append(ALICE, message(1))
    c = env.client(ALICE, mailbox="INBOX")
    assert c.ok("a FETCH 1 (BODY[HEADER.FIELDS (SUBJECT)])")[0].startswith(
        "* 1 FETCH (FLAGS (\\Seen) BODY[HEADER.FIELDS (SUBJECT)] {")
