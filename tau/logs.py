"""Logs as JSON lines on stdout (the journal under systemd): one object per event.

Fields: ``time`` (RFC 3339, UTC), ``level``, ``ns`` (logger namespace), ``msg`` (the formatted
text), plus the event's own scalar fields (the access log's method, path, status, request_id...).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import IO, Any

from twisted.logger import FileLogObserver, formatEvent

_SKIP = {"log_logger", "log_source", "log_format", "log_level", "log_namespace", "log_time",
         "log_system", "log_flattened", "log_trace", "log_io", "log_text", "message", "format",
         "isError", "system", "time", "log_legacy"}


def event_to_json(event: dict[str, Any]) -> str:
    out: dict[str, Any] = {
        "time": datetime.fromtimestamp(event.get("log_time", 0), UTC).isoformat(timespec="milliseconds"),
        "level": getattr(event.get("log_level"), "name", "info"),
        "ns": event.get("log_namespace", ""),
        "msg": formatEvent(event),
    }
    failure = event.get("log_failure")
    if failure is not None:
        out["traceback"] = failure.getTraceback()
    for key, value in event.items():
        if key in _SKIP or key.startswith("log_") or key in out:
            continue
        if isinstance(value, (str, int, float, bool)) or value is None:
            out[key] = value
    return json.dumps(out, ensure_ascii=False, default=str) + "\n"


#: Twisted's unconditional chatter: a UDP port per DNS query ("_QuietProtocol starting on 41234",
#: "(UDP Port 41234 Closed)") and "Starting factory <...>" of factories left ``noisy``.
_NOISE = re.compile(r"^(?:\S*QuietProtocol starting on \d+|\(UDP Port \d+ Closed\)"
                    r"|(?:Starting|Stopping) factory .*)$", re.DOTALL)


def is_noise(event: dict[str, Any]) -> bool:
    """Events not worth a line; only legacy ``log.msg`` text is ever dropped."""
    if "log_legacy" not in event and "log_text" not in event and "message" not in event:
        return False
    return bool(_NOISE.match(formatEvent(event) or ""))


def json_observer(stream: IO[str]) -> Callable[[dict[str, Any]], None]:
    out = FileLogObserver(stream, event_to_json)

    def observe(event: dict[str, Any]) -> None:
        if not is_noise(event):
            out(event)

    return observe
