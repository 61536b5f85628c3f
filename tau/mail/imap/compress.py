"""COMPRESS=DEFLATE (RFC 4978): after the tagged OK both directions are raw deflate (RFC 1951).

The command swaps the connection's transport for a :class:`DeflateTransport`, so the rest of the
protocol keeps calling ``conn.write()`` and ``conn.transport.*`` unchanged:

- Output: each ``write()`` is deflated and ends with ``Z_SYNC_FLUSH`` (RFC 4978 §4), so every
  response the server sends reaches the client complete. Compressed bytes go straight to the real
  transport, whose buffer still pauses the connection (IPushProducer), so a big FETCH keeps its
  backpressure.
- Input: compressed bytes are inflated at most :data:`CHUNK` octets at a time and handed to the
  framing layer, which applies its line, literal and command limits to the inflated octets. When
  the framing layer pauses reading (a command is running and too much input is waiting), inflating
  stops too and the rest stays compressed, so a small input that inflates to gigabytes (a
  decompression bomb) never is more than :data:`CHUNK` octets in memory ahead of the limits.
- Memory: zlib keeps about 256 KiB for the deflater (window 32 KiB × 4 + hash tables at
  ``memLevel`` 8) and 40 KiB for the inflater, about 300 KiB per compressed connection.

A second COMPRESS is ``NO [COMPRESSIONACTIVE]``; an unknown mechanism is ``BAD``. Input that is
not valid deflate ends the connection (there is no way to resynchronise).
"""

from __future__ import annotations

import zlib
from typing import Any

from twisted.logger import Logger

from .base import AUTHED, SYNC_NONE, Bad, No, State, command
from .parser import Parser

log = Logger(namespace="tau.mail.imap")

CHUNK = 16 * 1024      # inflated octets handed to the framing layer at a time
LEVEL = 6
MEM_LEVEL = 8
WBITS = -15            # raw deflate, 32 KiB window (RFC 4978 §4)


class DeflateTransport:
    """Stands in for ``conn.transport`` once compression is active; everything but writing and
    pausing input goes to the real transport."""

    def __init__(self, conn: Any, transport: Any) -> None:
        self._conn = conn
        self.wrapped = transport
        self._deflate = zlib.compressobj(LEVEL, zlib.DEFLATED, WBITS, MEM_LEVEL)
        self._inflate = zlib.decompressobj(WBITS)
        self._pending = b""            # compressed input not inflated yet (input paused)
        self._reading_paused = False
        self._feeding = False
        self._receive = type(conn).dataReceived.__get__(conn)  # the framing layer's dataReceived
        self.octets_in = self.octets_out = 0                  # before compression (for tests/metrics)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)

    # -- output ------------------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if not data:
            return
        self.octets_out += len(data)
        self.wrapped.write(self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH))

    def writeSequence(self, data: list[bytes]) -> None:
        self.write(b"".join(data))

    # -- input -------------------------------------------------------------------------------------
    def pauseProducing(self) -> None:
        self._reading_paused = True
        self.wrapped.pauseProducing()

    def resumeProducing(self) -> None:
        self._reading_paused = False
        self.wrapped.resumeProducing()
        self._feed()

    def data_received(self, data: bytes) -> None:
        """Installed as the connection's ``dataReceived``: the transport hands us compressed bytes."""
        self._pending += data
        self._feed()

    def _feed(self) -> None:
        if self._feeding:  # re-entered from the framing layer (resumeProducing): the loop continues
            return
        self._feeding = True
        try:
            while not self._reading_paused and self._conn.state != State.LOGOUT:
                try:
                    out = self._inflate.decompress(self._pending, CHUNK)
                except zlib.error:
                    self._corrupt()
                    return
                self._pending = self._inflate.unconsumed_tail
                if self._inflate.eof:  # RFC 4978: the stream never ends while the connection lives
                    self._corrupt()
                    return
                if out:
                    self.octets_in += len(out)
                    self._receive(out)
                if len(out) < CHUNK and not self._pending:
                    return
        finally:
            self._feeding = False

    def _corrupt(self) -> None:
        log.info("imap closing {ip}: invalid compressed input", ip=self._conn.peer_ip)
        self._pending = b""
        self._conn.state = State.LOGOUT
        self.write(b"* BYE Invalid compressed data\r\n")
        self.wrapped.loseConnection()


def active(conn: Any) -> bool:
    return isinstance(conn.transport, DeflateTransport)


def start(conn: Any) -> DeflateTransport:
    """Compress from now on. Input already buffered behind the COMPRESS command was sent after it,
    so it is compressed too and goes through the inflater."""
    wrapper = DeflateTransport(conn, conn.transport)
    leftover = bytes(conn._buf)
    del conn._buf[:]
    conn.transport = wrapper
    conn.dataReceived = wrapper.data_received
    if leftover:
        wrapper.data_received(leftover)
    return wrapper


@command("COMPRESS", AUTHED, SYNC_NONE)
async def do_compress(conn: Any, tag: str, p: Parser) -> None:
    mechanism = p.keyword()
    p.end()
    if mechanism != "DEFLATE":
        raise Bad("Unsupported compression mechanism")
    if active(conn):
        raise No("DEFLATE is already active", "COMPRESSIONACTIVE")
    conn.write(tag.encode() + b" OK DEFLATE active\r\n")
    start(conn)
