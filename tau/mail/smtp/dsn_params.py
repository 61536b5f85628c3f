"""The DSN extension's parameters (RFC 3461): ``RET``/``ENVID`` on MAIL, ``NOTIFY``/``ORCPT`` on RCPT.

Parsed and checked here, kept on the envelope per accepted recipient (an alias that expands gives
each of its targets the parameters of the RCPT that named it), persisted with the outbound queue
row (``DsnRequest.to_json``) and honoured by the delivery worker (``tau.mail.outbound.notify``).
Syntax errors are ``501 5.5.4``. xtext (§4) is kept encoded, as it came, since that is what the
report's ``Original-Envelope-Id``/``Original-Recipient`` fields and a DSN-capable next hop take.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from tau.mail.smtp.syntax import Reply

#: RFC 3461 §4: xchar is "!" through "~" except "+" and "="; "+" introduces two upper-case hex digits
_XTEXT = re.compile(r"(?:[!-*,-<>-~]|\+[0-9A-F]{2})*")
_ADDR_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
NOTIFY_WORDS = ("SUCCESS", "FAILURE", "DELAY")
DEFAULT_NOTIFY = ("FAILURE", "DELAY")     # §4.1: without NOTIFY, failures and (optionally) delays
ENVID_MAX = 100                           # §4.4
ORCPT_MAX = 500                           # §4.2: the address part (RFC 5321 path length and then some)


def is_xtext(value: str) -> bool:
    return _XTEXT.fullmatch(value) is not None


def xtext_decode(value: str) -> str:
    """``+2B`` → ``+`` (for the human part of a report; the fields keep the encoded form)."""
    return re.sub(r"\+([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), value)


def xtext_encode(value: str) -> str:
    return "".join(c if 33 <= ord(c) <= 126 and c not in "+=" else
                   "".join(f"+{b:02X}" for b in c.encode("utf-8")) for c in value)


@dataclass
class RcptDsn:
    notify: tuple[str, ...] | None = None    # None: not given (the defaults apply); (): NEVER
    orcpt: str | None = None                 # "rfc822;xtext", as given

    def wants(self, kind: str) -> bool:
        """Does this recipient want a ``kind`` (SUCCESS/FAILURE/DELAY) notification?"""
        return kind in (self.notify if self.notify is not None else DEFAULT_NOTIFY)


@dataclass
class DsnRequest:
    """What one transaction asked for: RET and ENVID, and per recipient NOTIFY and ORCPT."""

    ret: str | None = None                   # "FULL" | "HDRS" | None
    envid: str | None = None
    rcpts: dict[str, RcptDsn] = field(default_factory=dict)

    def rcpt(self, address: str) -> RcptDsn:
        return self.rcpts.get(address) or RcptDsn()

    @property
    def empty(self) -> bool:
        return self.ret is None and self.envid is None and not any(
            r.notify is not None or r.orcpt for r in self.rcpts.values())

    def to_json(self, recipients: list[str] | None = None) -> str | None:
        """The stored form (None when nothing was asked for); only ``recipients`` when given."""
        if self.empty:
            return None
        keep = self.rcpts if recipients is None else {r: self.rcpts[r] for r in recipients if r in self.rcpts}
        return json.dumps({"ret": self.ret, "envid": self.envid,
                           "rcpts": {r: [list(d.notify) if d.notify is not None else None, d.orcpt]
                                     for r, d in keep.items()}})

    @classmethod
    def from_json(cls, text: str | None) -> DsnRequest:
        if not text:
            return cls()
        data: dict[str, Any] = json.loads(text)
        rcpts = {r: RcptDsn(tuple(v[0]) if v[0] is not None else None, v[1]) for r, v in data["rcpts"].items()}
        return cls(data.get("ret"), data.get("envid"), rcpts)


def mail_params(params: dict[str, str | None]) -> tuple[str | None, str | None]:
    """(RET, ENVID) from MAIL FROM's parameters."""
    ret = envid = None
    if "RET" in params:
        ret = (params["RET"] or "").upper()
        if ret not in ("FULL", "HDRS"):
            raise Reply(501, "5.5.4 RET must be FULL or HDRS")
    if "ENVID" in params:
        envid = params["ENVID"] or ""
        if not envid or len(envid) > ENVID_MAX or not is_xtext(envid):
            raise Reply(501, "5.5.4 Bad ENVID parameter (xtext, RFC 3461 section 4.4)")
    return ret, envid


def rcpt_params(params: dict[str, str | None]) -> RcptDsn:
    """NOTIFY and ORCPT from RCPT TO's parameters; anything else is the caller's to refuse."""
    out = RcptDsn()
    if "NOTIFY" in params:
        words = [w.upper() for w in (params["NOTIFY"] or "").split(",")]
        if words == ["NEVER"]:
            out.notify = ()
        elif not words or any(w not in NOTIFY_WORDS for w in words) or len(set(words)) != len(words):
            raise Reply(501, "5.5.4 NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY")
        else:
            out.notify = tuple(words)
    if "ORCPT" in params:
        value = params["ORCPT"] or ""
        kind, sep, addr = value.partition(";")
        if not sep or not _ADDR_TYPE.fullmatch(kind) or not addr or len(addr) > ORCPT_MAX or not is_xtext(addr):
            raise Reply(501, "5.5.4 Bad ORCPT parameter (addr-type;xtext, RFC 3461 section 4.2)")
        out.orcpt = f"{kind};{addr}"
    return out


def dsn_args(dsn: DsnRequest, rcpts: list[str]) -> tuple[str, dict[str, str]]:
    """The parameters to pass on to a next hop that advertises DSN (RFC 3461 §5.2): what to
    append to MAIL FROM and to each RCPT TO. A recipient without ORCPT gets its address as given
    to us, so the final report still names what the sender wrote."""
    mail = (f" RET={dsn.ret}" if dsn.ret else "") + (f" ENVID={dsn.envid}" if dsn.envid else "")
    out = {}
    for rcpt in rcpts:
        wanted = dsn.rcpt(rcpt)
        notify = wanted.notify if wanted.notify is not None else None
        args = "" if notify is None else " NOTIFY=" + (",".join(notify) if notify else "NEVER")
        args += f" ORCPT={wanted.orcpt or 'rfc822;' + xtext_encode(rcpt)}"
        out[rcpt] = args
    return mail, out
