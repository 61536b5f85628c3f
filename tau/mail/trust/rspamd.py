"""Rspamd client over its HTTP protocol (``POST /checkv2``, rspamd.com/doc/developers/protocol.html).

The message is the request body; the envelope travels in headers (``IP``, ``Helo``, ``From``,
``Rcpt`` once per recipient, ``Queue-Id``). The JSON answer carries ``score``,
``required_score``, ``action`` and ``symbols``. Off unless ``[spam] rspamd_url`` is set; when
Rspamd cannot be reached the mail is accepted (fail open) and the header says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from twisted.logger import Logger

log = Logger()


@dataclass(frozen=True)
class SpamResult:
    score: float | None          # None: not checked (unreachable, error)
    action: str = ""
    symbols: tuple[str, ...] = ()


async def check(url: str, message: bytes, ip: str, helo: str, mail_from: str, rcpts: list[str], queue_id: str,
                timeout: float) -> SpamResult:
    import treq

    headers: dict[str, Any] = {"IP": [ip], "Helo": [helo or "unknown"], "From": [mail_from or ""],
                               "Rcpt": list(rcpts), "Queue-Id": [queue_id], "Content-Type": ["message/rfc822"]}
    try:
        from twisted.internet import reactor

        from tau.net.httpclient import quiet_pool

        response = await treq.post(url.rstrip("/") + "/checkv2", data=message, headers=headers, timeout=timeout,
                                   pool=quiet_pool(reactor))
        body = await response.content()
        if response.code != 200:
            log.warn("rspamd answered HTTP {code}", code=response.code)
            return SpamResult(None)
        answer = json.loads(body)
        symbols = tuple(sorted((answer.get("symbols") or {}).keys()))
        return SpamResult(float(answer.get("score", 0.0)), str(answer.get("action", "")), symbols)
    except Exception as exc:
        log.warn("rspamd check failed: {exc}", exc=exc)
        return SpamResult(None)


async def ping(url: str, timeout: float) -> str:
    """For ``registry.health_checks["rspamd"]``: ``ok``, or ``degraded: why`` (mail is then accepted
    unfiltered, see the module docstring)."""
    import treq

    try:
        response = await treq.get(url.rstrip("/") + "/ping", timeout=timeout)
        await response.content()
    except Exception as exc:
        return f"degraded: Rspamd at {url} unreachable ({exc.__class__.__name__}): mail is accepted unfiltered"
    if response.code != 200:
        return f"degraded: Rspamd at {url} answered HTTP {response.code}: mail is accepted unfiltered"
    return "ok"


def headers(result: SpamResult, junk: float, reject: float) -> bytes:
    """``X-Spam-Score`` / ``X-Spam-Status`` (the SpamAssassin-style headers clients filter on)."""
    if result.score is None:
        return b"X-Spam-Status: Unknown (spam filter unavailable)\r\n"
    flag = "Yes" if result.score >= junk else "No"
    symbols = ",".join(result.symbols[:30])
    line = f"X-Spam-Score: {result.score:.2f}\r\nX-Spam-Status: {flag}, score={result.score:.2f}" \
           f" required={junk:.2f} reject={reject:.2f}"
    if symbols:
        line += f"\r\n\ttests={symbols}"
    return (line + "\r\n").encode()
