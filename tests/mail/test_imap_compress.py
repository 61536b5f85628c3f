"""COMPRESS=DEFLATE (RFC 4978): raw deflate both ways after the tagged OK, each response complete
at a sync flush, a second COMPRESS refused, bounded memory for inflated input, FETCH backpressure."""

from __future__ import annotations

import base64
import os
import tracemalloc
import zlib

import pytest

from tests.support.imap import IMAPEnv, message

ALICE = "alice@example.test"


@pytest.fixture
def env(registry):
    e = IMAPEnv(registry)
    e.add_user(ALICE)
    return e


class Deflated:
    """The client side of a compressed connection, as K-9 or FairEmail run it."""

    def __init__(self, client):
        self.client = client
        self.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.inflate = zlib.decompressobj(-15)
        self.wire_in = 0

    def compress(self, data: bytes) -> bytes:
        return self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)

    def output(self) -> bytes:
        raw = self.client.output()
        self.wire_in += len(raw)
        return self.inflate.decompress(raw)

    def send(self, data: bytes) -> bytes:
        self.client.proto.dataReceived(self.compress(data))
        return self.output()


def compressed(env, mailbox: str | None = None) -> Deflated:
    c = env.client(ALICE, real_login=True)
    assert c.send(b"z COMPRESS DEFLATE\r\n") == b"z OK DEFLATE active\r\n"
    d = Deflated(c)
    if mailbox:
        assert d.send(f"s SELECT {mailbox}\r\n".encode()).endswith(b"s OK [READ-WRITE] Select completed\r\n")
    return d


def big_message(size: int) -> bytes:
    body = base64.encodebytes(os.urandom(size * 3 // 4)).replace(b"\n", b"\r\n")
    return message(1, body=body.decode())


def test_capability_after_login_only(env):
    c = env.client()
    assert "COMPRESS=DEFLATE" not in c.ok("a CAPABILITY")[0]
    assert c.cmd("b COMPRESS DEFLATE") == ["b BAD Not authenticated"]
    c.login(ALICE)
    assert "COMPRESS=DEFLATE" in c.ok("c CAPABILITY")[0].split()


def test_round_trip_one_megabyte_fetch_byte_exact(env):
    raw = big_message(1024 * 1024)
    env.append(ALICE, raw)
    d = compressed(env, "INBOX")
    out = d.send(b"f FETCH 1 BODY.PEEK[]\r\n")
    head = b"* 1 FETCH (BODY[] {%d}\r\n" % len(raw)
    assert out == head + raw + b")\r\nf OK FETCH completed\r\n"
    assert d.wire_in < len(out)  # base64 text compresses by a quarter at least


def test_idle_push_arrives_compressed(env):
    d = compressed(env, "INBOX")
    assert d.send(b"i IDLE\r\n") == b"+ idling\r\n"
    env.append(ALICE, message(2))
    assert d.output() == b"* 1 EXISTS\r\n* 1 RECENT\r\n"  # complete, thanks to the sync flush after each write
    assert d.send(b"DONE\r\n") == b"i OK Idle completed\r\n"


def test_second_compress_refused(env):
    d = compressed(env)
    assert d.send(b"y COMPRESS DEFLATE\r\n") == b"y NO [COMPRESSIONACTIVE] DEFLATE is already active\r\n"
    assert d.send(b"n NOOP\r\n") == b"n OK NOOP completed\r\n"


def test_unknown_mechanism_is_bad(env):
    c = env.client(ALICE)
    assert c.cmd("a COMPRESS LZ4") == ["a BAD Unsupported compression mechanism"]
    assert c.cmd("b NOOP") == ["b OK NOOP completed"]  # still uncompressed


def test_pipelined_commands_split_across_writes(env):
    d = compressed(env)
    wire = d.compress(b"a NOOP\r\nb CAPA") + d.compress(b"BILITY\r\nc NOOP\r\n")
    for i in range(0, len(wire), 3):  # the compressed stream in tiny pieces
        d.client.proto.dataReceived(wire[i:i + 3])
    lines = d.output().split(b"\r\n")
    assert lines[0] == b"a OK NOOP completed" and lines[2] == b"b OK Capability completed"
    assert lines[3] == b"c OK NOOP completed"


def test_invalid_deflate_input_closes_the_connection(env):
    d = compressed(env)
    d.client.proto.dataReceived(b"\xff\xff\xff\xff garbage")
    assert d.output() == b"* BYE Invalid compressed data\r\n"
    assert d.client.closed


def test_decompression_bomb_is_inflated_in_bounded_pieces(env):
    d = compressed(env)
    bomb = d.compress(b"t1 APPEND " + b"x" * (64 * 1024 * 1024))  # 64 MiB of one line, about 64 KiB on the wire
    assert len(bomb) < 128 * 1024
    tracemalloc.start()
    try:
        d.client.proto.dataReceived(bomb + d.compress(b"\r\nn NOOP\r\n"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024
    assert d.output() == b"t1 BAD Line too long\r\nn OK NOOP completed\r\n"


def test_big_fetch_waits_for_the_transport(env):
    raw = big_message(3 * 1024 * 1024)
    env.append(ALICE, raw)
    d = compressed(env, "INBOX")
    d.client.proto.pauseProducing()  # the socket buffer is full
    first = d.send(b"f FETCH 1 BODY.PEEK[]\r\n")
    assert 0 < len(first) < len(raw) // 2 and b"f OK" not in first
    d.client.proto.resumeProducing()
    rest = d.output()
    assert first + rest == b"* 1 FETCH (BODY[] {%d}\r\n" % len(raw) + raw + b")\r\nf OK FETCH completed\r\n"


def test_input_stays_compressed_while_a_command_waits(env):
    raw = big_message(3 * 1024 * 1024)
    env.append(ALICE, raw)
    d = compressed(env, "INBOX")
    d.client.proto.pauseProducing()  # the client does not read: FETCH waits for room
    first = d.send(b"f FETCH 1 BODY.PEEK[]\r\n")
    pipelined = b"".join(b'i%d ID ("name" "%s")\r\n' % (n, b"v" * 60000) for n in range(40))  # 2.4 MB
    d.client.proto.dataReceived(d.compress(pipelined))
    assert d.client.transport.producerState == "paused"  # the server stopped reading the socket
    d.client.proto.resumeProducing()
    out = first + d.output()
    assert out.count(b" OK ID completed\r\n") == 40 and b"f OK FETCH completed\r\n" in out
    assert d.client.transport.producerState == "producing"
