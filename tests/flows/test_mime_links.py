"""The streaming MIME rewriter behind outgoing attachment links (``tau.flows.mime_links``).

The end-to-end behaviour is in ``test_attachment_links.py``; here the parser is held to the
standard library's reading of the same bytes, on hostile and malformed input, at every chunking.
"""

from __future__ import annotations

import email
import email.policy
import os
from email.message import EmailMessage
from typing import Any

import pytest

from tau.flows import mime_links
from tau.flows.mime_links import Unparseable, rewrite, safe_name


class Blob:
    """A stand-in for ``SyncBlobWriter``."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.state = "open"

    def write(self, data: bytes) -> None:
        assert self.state == "open"
        self.data += data

    def commit(self) -> Any:
        self.state = "committed"
        return type("Info", (), {"key": f"k{id(self)}", "size": len(self.data)})()

    def abort(self) -> None:
        self.state = "aborted"


def run(raw: bytes, threshold: int = 1000, chunk: int = 65536) -> tuple[bytes, list[Any], list[Blob]]:
    out = bytearray()
    blobs: list[Blob] = []
    tokens = iter(range(1000))

    def new_blob() -> Blob:
        blobs.append(Blob())
        return blobs[-1]

    found = rewrite((raw[i:i + chunk] for i in range(0, len(raw), chunk)), out.extend, new_blob, threshold,
                    lambda t: f"https://tau.test/s/{t}", lambda: f"T{next(tokens)}")
    return bytes(out), found, blobs


def message(*attachments: tuple[str, bytes, str | None], cte: str | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.test", "b@example.test", "s"
    msg.set_content("body text\n")
    msg.add_alternative("<p>body</p>", subtype="html")
    for name, data, disposition in attachments:
        kw: dict[str, Any] = {"cte": cte} if cte else {}
        msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name,
                           disposition=disposition or "attachment", **kw)
    return msg.as_bytes(policy=email.policy.SMTP)


def parsed(raw: bytes) -> list[Any]:
    return list(email.message_from_bytes(raw, policy=email.policy.default).walk())


@pytest.mark.parametrize("cte", [None, "quoted-printable", "7bit"])
@pytest.mark.parametrize("chunk", [1, 7, 4096, 65536])
def test_big_attachment_moves_out_byte_exact_at_any_chunking(cte: str | None, chunk: int) -> None:
    big = os.urandom(5000) if cte != "7bit" else b"a line of text\r\n" * 400
    small = b"small one"
    raw = message(("big.bin", big, None), ("small.bin", small, None), cte=cte)
    out, found, blobs = run(raw, chunk=chunk)
    assert [(f.name, f.size, f.token) for f in found] == [("big.bin", len(big), "T0")]
    assert bytes(blobs[0].data) == big and blobs[0].state == "committed"
    parts = parsed(out)
    assert [p.get_content_type() for p in parts] == ["multipart/mixed", "multipart/alternative", "text/plain",
                                                     "text/html", "text/plain", "application/octet-stream"]
    assert "https://tau.test/s/T0" in parts[4].get_content() and '"big.bin"' in parts[4].get_content()
    assert parts[5].get_payload(decode=True) == small
    assert out.count(b"--===") == raw.count(b"--===")       # every delimiter is still there


def test_nothing_to_do_means_no_output_is_kept() -> None:
    raw = message(("a.bin", b"x" * 500, None))
    out, found, blobs = run(raw)
    assert found == [] and blobs == []
    single = b"Subject: s\r\nContent-Type: application/octet-stream\r\n\r\n" + b"z" * 5000
    assert run(single)[1] == []


def test_inline_parts_and_signed_or_encrypted_multiparts_are_untouched() -> None:
    raw = message(("photo.png", os.urandom(3000), "inline"))
    assert run(raw)[1] == []
    for kind in (b"signed", b"encrypted"):
        body = (b'Content-Type: multipart/' + kind + b'; boundary="S"; protocol="application/pgp-x"\r\n\r\n'
                b'--S\r\nContent-Type: multipart/mixed; boundary="M"\r\n\r\n--M\r\nContent-Disposition: attachment;'
                b" filename=x.bin\r\n\r\n" + b"q" * 5000 + b"\r\n--M--\r\n--S--\r\n")
        assert run(body)[1] == [], kind
    # after a signed part closes, a later attachment at the outer level is fair game again
    body = (b'Content-Type: multipart/mixed; boundary="O"\r\n\r\n--O\r\n'
            b'Content-Type: multipart/signed; boundary="S"\r\n\r\n--S\r\nContent-Disposition: attachment;'
            b" filename=in.bin\r\n\r\n" + b"q" * 5000 + b"\r\n--S--\r\n"
            b"--O\r\nContent-Disposition: attachment; filename=out.bin\r\n\r\n" + b"r" * 5000 + b"\r\n--O--\r\n")
    out, found, _ = run(body)
    assert [f.name for f in found] == ["out.bin"] and b"q" * 5000 in out and b"r" * 5000 not in out


def test_unclosed_inner_multipart_ends_at_the_outer_delimiter() -> None:
    body = (b'Content-Type: multipart/mixed; boundary="O"\r\n\r\n--O\r\n'
            b'Content-Type: multipart/mixed; boundary="I"\r\n\r\n--I\r\nContent-Type: text/plain\r\n\r\nhi\r\n'
            b"--O  \t\r\nContent-Disposition: attachment; filename=late.bin\r\n\r\n" + b"L" * 3000 + b"\r\n--O--\r\n")
    out, found, blobs = run(body)
    assert [f.name for f in found] == ["late.bin"] and bytes(blobs[0].data) == b"L" * 3000


def test_bare_lf_line_endings_and_a_missing_final_delimiter() -> None:
    body = (b'Content-Type: multipart/mixed; boundary="B"\n\n--B\nContent-Type: text/plain\n\nhi\n'
            b"--B\nContent-Disposition: attachment; filename=lf.bin\n\n" + b"line\n" * 1000)
    out, found, blobs = run(body)
    assert [f.name for f in found] == ["lf.bin"]
    assert bytes(blobs[0].data) == b"line\n" * 999 + b"line"      # the last break belongs to the delimiter


def test_hostile_base64_decodes_what_it_can() -> None:
    junk = b"QUJD" * 400 + b"!!**\r\n==\r\nQUJD====QUJD\r\n" + b"\xff\xfe" * 10 + b"QU"
    body = (b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\nContent-Transfer-Encoding: base64\r\n'
            b"Content-Disposition: attachment; filename=j.bin\r\n\r\n" + junk + b"\r\n--B--\r\n")
    out, found, blobs = run(body)
    assert found and bytes(blobs[0].data).startswith(b"ABC" * 400)


def test_an_endless_header_block_is_refused_and_nothing_is_left_open() -> None:
    body = (b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\nContent-Disposition: attachment;'
            b" filename=a.bin\r\n\r\n" + b"x" * 3000 + b"\r\n--B\r\n" + b"X-Junk: y\r\n" * 10_000)
    with pytest.raises(Unparseable) as info:
        run(body)
    assert [f.name for f in info.value.found] == ["a.bin"]      # committed before: the caller cleans it up


def test_a_failing_blob_write_aborts_the_part_in_progress() -> None:
    class Full(Blob):
        def write(self, data: bytes) -> None:
            if len(self.data) > 2000:
                raise OSError("disk full")
            super().write(data)

    made: list[Blob] = []

    def new_blob() -> Blob:
        made.append(Full())
        return made[-1]

    raw = message(("big.bin", os.urandom(5000), None))
    with pytest.raises(OSError):
        rewrite([raw], bytearray().extend, new_blob, 1000, str, lambda: "t")
    assert [b.state for b in made] == ["aborted"]


def test_long_lines_are_cut_and_still_decoded() -> None:
    payload = os.urandom(200_000)
    import base64

    one_line = base64.b64encode(payload)             # no line breaks at all: ~267 kB "line"
    body = (b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\nContent-Transfer-Encoding: base64\r\n'
            b"Content-Disposition: attachment; filename=l.bin\r\n\r\n" + one_line + b"\r\n--B--\r\n")
    _, found, blobs = run(body, threshold=1000)
    assert found and bytes(blobs[0].data) == payload


@pytest.mark.parametrize(("raw", "want"), [
    ("../../x", "x"), ("..\\..\\windows\\evil.exe", "evil.exe"), ("/etc/passwd", "passwd"), ("..", "attachment"),
    (".", "attachment"), ("", "attachment"), (None, "attachment"), ("a\x00b\r\nc.txt", "abc.txt"),
    ("dir/", "attachment"), ("ok name.pdf", "ok name.pdf"), ("\u202egnp.exe", "gnp.exe"),
])
def test_safe_name(raw: str | None, want: str) -> None:
    assert safe_name(raw) == want


def test_safe_name_keeps_the_extension_of_a_long_name() -> None:
    name = safe_name("n" * 500 + ".pdf")
    assert len(name) <= mime_links.MAX_NAME and name.endswith(".pdf")
