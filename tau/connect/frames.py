"""Checks on signaling frames: what tau relays must at least look like what it claims to be.

SDP (RFC 8866 section 5) is checked for shape only: ``v=0`` first, every line ``<letter>=<text>``
with no control characters, and the o=, s=, t= and m= lines an offer or answer needs. The
payload is then relayed unchanged; peers parse it for real. Trickle ICE candidates (RFC 8838)
travel as the browser's ``RTCIceCandidateInit`` dictionary, or null for end-of-candidates.
"""

from __future__ import annotations

from typing import Any

from tau.http.websocket import FrameError

MAX_SDP = 64 * 1024
MAX_CANDIDATE = 1024
MAX_ID = 64
MAX_ADDRESS = 320


def text_id(frame: dict[str, Any], key: str) -> str:
    value = frame.get(key)
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID:
        raise FrameError("invalid_request", f"{key} must be a string id")
    return value


def recipient(frame: dict[str, Any]) -> str:
    """``to``: a participant id, ``"sfu"``, or a user address (compared in lower case)."""
    value = frame.get("to")
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ADDRESS or any(ord(c) < 33 for c in value):
        raise FrameError("invalid_request", "to must be a participant id or a user address")
    return value.lower() if "@" in value else value


def check_sdp(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_SDP:
        raise FrameError("malformed_sdp", f"sdp must be a session description of at most {MAX_SDP} bytes")
    lines = value.replace("\r\n", "\n").rstrip("\n").split("\n")
    if lines[0] != "v=0":
        raise FrameError("malformed_sdp", "a session description starts with v=0")
    seen = set()
    for number, line in enumerate(lines, 1):
        if len(line) < 2 or line[1] != "=" or not "a" <= line[0] <= "z":
            raise FrameError("malformed_sdp", f"line {number} is not <type>=<value>")
        if any(ord(c) < 32 and c != "\t" for c in line):
            raise FrameError("malformed_sdp", f"line {number} has control characters")
        seen.add(line[0])
    missing = {"o", "s", "t", "m"} - seen
    if missing:
        raise FrameError("malformed_sdp", f"missing {', '.join(sorted(m + '=' for m in missing))} line(s)")
    return value


def check_candidate(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise FrameError("malformed_candidate", "candidate is an RTCIceCandidateInit object or null")
    text = value.get("candidate", "")
    if not isinstance(text, str) or len(text) > MAX_CANDIDATE or (text and not text.startswith("candidate:")):
        raise FrameError("malformed_candidate", "candidate.candidate must be an a=candidate value")
    if any(ord(c) < 32 for c in text):
        raise FrameError("malformed_candidate", "candidate has control characters")
    mid = value.get("sdpMid")
    if mid is not None and not (isinstance(mid, str) and len(mid) <= MAX_ID):
        raise FrameError("malformed_candidate", "sdpMid must be a short string")
    index = value.get("sdpMLineIndex")
    if index is not None and not (isinstance(index, int) and not isinstance(index, bool) and 0 <= index < 1024):
        raise FrameError("malformed_candidate", "sdpMLineIndex must be a small integer")
    return value


def flag(frame: dict[str, Any], key: str) -> bool | None:
    value = frame.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise FrameError("invalid_request", f"{key} must be true or false")
    return value
