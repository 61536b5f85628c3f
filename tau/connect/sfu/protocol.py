"""The JSON-lines protocol between the tau daemon and its SFU worker processes.

One JSON object per line, UTF-8, on the worker's stdin (daemon → worker, ``op``) and stdout
(worker → daemon, ``ev``). Lines are small (SDP at most ~64 KiB), so no framing beyond ``\\n``.

daemon → worker::

    {"op": "publish", "room", "peer", "sdp"}            a participant's offer: its one upstream
    {"op": "answer",  "room", "peer", "stream", "sdp"}  its answer to our offer for ``stream``'s media
    {"op": "ice",     "room", "peer", "stream"?, "candidate"}
    {"op": "leave",   "room", "peer"}                   {"op": "close", "room"}      {"op": "quit"}

worker → daemon::

    {"ev": "ready", "pid", "passthrough"}               once, when it can take work
    {"ev": "answer", "room", "peer", "sdp"}             to a publish
    {"ev": "offer",  "room", "peer", "stream", "sdp"}   ``stream``'s media for ``peer``
    {"ev": "unpublished", "room", "peer", "stream"}     that media is gone
    {"ev": "error",  "room", "peer", "message"}         {"ev": "stats", ...}
"""

from __future__ import annotations

import json
from typing import Any

MAX_LINE = 1024 * 1024


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode("utf-8") + b"\n"


class LineBuffer:
    """Bytes in, complete JSON objects out; a line that is not one is skipped (and counted)."""

    def __init__(self) -> None:
        self._buffer = b""
        self.bad = 0

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        if len(self._buffer) > MAX_LINE:
            self._buffer, self.bad = b"", self.bad + 1
        out = []
        for line in lines:
            if not line.strip():
                continue
            try:
                message = json.loads(line)
            except ValueError:
                self.bad += 1
                continue
            if isinstance(message, dict):
                out.append(message)
            else:
                self.bad += 1
        return out
