"""BINARY (RFC 3516): quoted-printable and base64 undone by the server, literal8 when the octets
hold NUL, BINARY.SIZE the decoded size, unknown encodings NO [UNKNOWN-CTE]."""

from __future__ import annotations

import pytest

from tests.support.imap import IMAPEnv

ALICE = "alice@example.test"


@pytest.fixture
def env(registry):
    e = IMAPEnv(registry)
    e.add_user(ALICE)
    return e


def single(cte: str, body: bytes) -> bytes:
    return (b"Subject: part\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: " + cte.encode() + b"\r\n\r\n" + body)


def binary(env, raw: bytes, section: str = "1") -> bytes:
    env.append(ALICE, raw)
    c = env.client(ALICE, mailbox="INBOX")
    out = c.send(f"b FETCH 1 (BINARY.PEEK[{section}] BINARY.SIZE[{section}])\r\n".encode())
    assert out.endswith(b")\r\nb OK FETCH completed\r\n"), out
    return out[len(b"* 1 FETCH ("):-len(b")\r\nb OK FETCH completed\r\n")]


def test_quoted_printable_soft_breaks_escapes_and_trailing_blanks(env):
    body = b"caf=C3=A9 =3d soft=\r\nbreak, blanks dropped   \r\nkept \t=\r\nhere=  \r\n!\r\n"
    decoded = "café = soft".encode() + b"break, blanks dropped\r\nkept \there!\r\n"
    assert binary(env, single("quoted-printable", body)) == \
        b"BINARY[1] {%d}\r\n%s BINARY.SIZE[1] %d" % (len(decoded), decoded, len(decoded))


def test_quoted_printable_keeps_malformed_escapes(env):
    body = b"100=% sure =ZZ and =4\r\n"
    assert binary(env, single("Quoted-Printable", body)) == b"BINARY[1] {23}\r\n%s BINARY.SIZE[1] 23" % body


def test_quoted_printable_nul_goes_out_as_literal8(env):
    assert binary(env, single("quoted-printable", b"a=00b\r\n")) == b"BINARY[1] ~{5}\r\na\x00b\r\n BINARY.SIZE[1] 5"


def test_base64_lenient(env):
    body = b"AAEC\r\nAwQF  BgcI\r\n*!*CQ\r\n"  # line breaks, blanks and junk in between, no padding
    assert binary(env, single("base64", body)) == b"BINARY[1] ~{10}\r\n" + bytes(range(10)) + b" BINARY.SIZE[1] 10"


def test_unknown_encoding_is_unknown_cte(env):
    env.append(ALICE, single("x-uuencode", b"begin 644 x\r\n"))
    c = env.client(ALICE, mailbox="INBOX")
    assert c.cmd("b FETCH 1 (BINARY.SIZE[1])")[-1].startswith("b NO [UNKNOWN-CTE]")


def test_body_fetch_never_sends_nul_in_a_literal_binary_keeps_it(env):
    """RFC 3501 §4.3: a literal is CHAR8 without NUL. BODY[] sends NUL as 0x80 (Dovecot does the
    same, length unchanged); BINARY[] sends the real octets as literal8."""
    env.append(ALICE, single("binary", b"\x00-\xe4\r\n"))
    c = env.client(ALICE, mailbox="INBOX")
    out = c.send(b"b FETCH 1 (BODY.PEEK[1])\r\n")
    assert out == b"* 1 FETCH (BODY[1] {5}\r\n\x80-\xe4\r\n)\r\nb OK FETCH completed\r\n"
    out = c.send(b"c FETCH 1 (BINARY.PEEK[1])\r\n")
    assert out == b"* 1 FETCH (BINARY[1] ~{5}\r\n\x00-\xe4\r\n)\r\nc OK FETCH completed\r\n"
