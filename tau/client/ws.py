"""A small RFC 6455 WebSocket client on asyncio streams, speaking JSON frames.

Why not autobahn's asyncio client: autobahn picks its async framework process-wide through
txaio, and the tau server (autobahn on Twisted) may live in the same process (tests, tools), where
``txaio.use_asyncio()`` and ``txaio.use_twisted()`` exclude each other. The client side of the
protocol is small: the opening handshake (section 4.1, ``Sec-WebSocket-Accept`` checked), masked
client frames (5.3), fragmentation (5.4), ping/pong (5.5.2-3) and the closing handshake (7).

``Socket.connect`` sends the token in ``Authorization: Bearer`` (or ``?access_token=``);
``recv`` returns the next JSON frame and raises :class:`Closed` with the server's close code
once the socket is gone.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import ssl
import struct
from typing import Any
from urllib.parse import urlencode, urlsplit

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, BINARY, CLOSE, PING, PONG, CONTINUATION = 0x1, 0x2, 0x8, 0x9, 0xA, 0x0


class Closed(Exception):
    def __init__(self, code: int | None, reason: str | None) -> None:
        super().__init__(f"websocket closed ({code}): {reason or ''}")
        self.code, self.reason = code, reason


def encode_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A masked client frame (RFC 6455 section 5.2)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    mask = os.urandom(4)
    return head + mask + _xor(payload, mask)


def _xor(data: bytes, mask: bytes) -> bytes:
    n = len(data)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(data, "big") ^ key).to_bytes(n, "big")


class Socket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, max_size: int) -> None:
        self._reader, self._writer, self.max_size = reader, writer, max_size
        self.frames: asyncio.Queue[dict[str, Any] | Closed] = asyncio.Queue()
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.closed = asyncio.Event()
        self._close_sent = False
        self._task = asyncio.get_running_loop().create_task(self._read_loop())

    @classmethod
    async def connect(cls, base_url: str, path: str, token: str | None, params: dict[str, Any] | None = None,
                      token_in_query: bool = False, max_size: int = 16 * 1024 * 1024,
                      verify_tls: bool = True, timeout: float = 10.0,
                      headers: dict[str, str] | None = None) -> "Socket":
        params = dict(params or {})
        extra = dict(headers or {})
        if token and token_in_query:
            params["access_token"] = token
        elif token:
            extra["Authorization"] = f"Bearer {token}"
        parts = urlsplit(base_url)
        secure = parts.scheme in ("https", "wss")
        context: Any = None
        if secure:
            context = ssl.create_default_context() if verify_tls else ssl._create_unverified_context()
        host, port = parts.hostname or "localhost", parts.port or (443 if secure else 80)
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context, limit=2**20), timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        target = path + (f"?{urlencode(params)}" if params else "")
        lines = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        lines += [f"{k}: {v}" for k, v in extra.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        answer = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines if h)}
        expected = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()
        if not status_line.startswith("HTTP/1.1 101") or answer.get("sec-websocket-accept") != expected:
            writer.close()
            raise Closed(None, f"handshake refused: {status_line}")
        return cls(reader, writer, max_size)

    # -- reading --------------------------------------------------------------------------------
    async def _read_frame(self) -> tuple[bool, int, bytes]:
        b1, b2 = await self._reader.readexactly(2)
        n = b2 & 0x7F
        if n == 126:
            (n,) = struct.unpack(">H", await self._reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack(">Q", await self._reader.readexactly(8))
        if n > self.max_size:
            raise Closed(1009, "frame too big")
        mask = await self._reader.readexactly(4) if b2 & 0x80 else None
        payload = await self._reader.readexactly(n)
        if mask:
            payload = _xor(payload, mask)
        return bool(b1 & 0x80), b1 & 0x0F, payload

    async def _read_loop(self) -> None:
        buffer, kind = b"", TEXT
        try:
            while True:
                fin, opcode, payload = await self._read_frame()
                if opcode == PING:
                    self._write(encode_frame(PONG, payload))
                elif opcode == CLOSE:
                    code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1005
                    self._finish(code, payload[2:].decode("utf-8", "replace"))
                    if not self._close_sent:
                        self._write(encode_frame(CLOSE, payload[:2]))
                    break
                elif opcode in (TEXT, BINARY, CONTINUATION):
                    if opcode != CONTINUATION:
                        buffer, kind = b"", opcode
                    buffer += payload
                    if fin:
                        self._deliver(buffer, kind)
                        buffer = b""
        except Closed as exc:
            self._finish(exc.code, exc.reason)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            self._finish(1006, "connection lost")
        finally:
            self._finish(1006, "connection lost")
            self._writer.close()

    def _deliver(self, payload: bytes, kind: int) -> None:
        try:
            frame = json.loads(payload) if kind == TEXT else {"type": "binary", "size": len(payload)}
        except ValueError:
            frame = {"type": "invalid", "raw": payload[:200].decode("latin-1")}
        self.frames.put_nowait(frame)

    def _finish(self, code: int | None, reason: str | None) -> None:
        if not self.closed.is_set():
            self.close_code, self.close_reason = code, reason
            self.closed.set()
            self.frames.put_nowait(Closed(code, reason))

    async def recv(self, timeout: float | None = None) -> dict[str, Any]:
        item = await asyncio.wait_for(self.frames.get(), timeout)
        if isinstance(item, Closed):
            self.frames.put_nowait(item)  # every later recv sees the close too
            raise item
        return item

    async def recv_type(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        """The next frame of one type (others are dropped)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            frame = await self.recv(max(0.0, deadline - loop.time()))
            if frame.get("type") == kind:
                return frame

    # -- writing --------------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        if not self._writer.is_closing():
            self._writer.write(data)

    def send(self, frame: dict[str, Any]) -> None:
        self.send_raw(json.dumps(frame).encode())

    def send_raw(self, payload: bytes, binary: bool = False) -> None:
        if self.closed.is_set():
            raise Closed(self.close_code, self.close_reason)
        self._write(encode_frame(BINARY if binary else TEXT, payload))

    async def drain(self) -> None:
        await self._writer.drain()

    async def close(self, code: int = 1000, timeout: float = 5.0) -> None:
        if not self.closed.is_set():
            self._close_sent = True
            self._write(encode_frame(CLOSE, struct.pack(">H", code)))
            try:
                await asyncio.wait_for(self.closed.wait(), timeout)
            except TimeoutError:
                self.abort()
        await asyncio.wait({self._task}, timeout=timeout)

    def abort(self) -> None:
        """Drop the TCP connection without a close handshake (a crashed client)."""
        transport = self._writer.transport
        transport.abort()
