"""Run a compiled script against one message for one recipient (RFC 5228 §2.10, §4, §5).

The result is an ``Outcome``: where copies go (with their IMAP flags), redirects, a rejection and
a vacation request. Nothing is done here: delivery commits the outcome in its transaction. Limits
(tau's): at most ``MAX_REDIRECTS`` redirects and ``MAX_ACTIONS`` actions per message, and a run
time of ``MAX_SECONDS``; a script past a limit or failing at run time gets the implicit keep
(RFC 5228 §2.10.6), so a broken filter never loses mail.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tau.mail.compose import valid_address
from tau.mail.sieve.compile import Compiled
from tau.mail.sieve.dates import date_part, header_date
from tau.mail.sieve.match import matches

MAX_REDIRECTS = 4
MAX_ACTIONS = 64
MAX_SECONDS = 0.05


class SieveRuntimeError(Exception):
    pass


class _Stop(Exception):
    pass


@dataclass(frozen=True)
class MessageView:
    """What a script may look at: decoded headers, the text body, size and the SMTP envelope."""

    headers: tuple[tuple[str, str], ...]
    body: str
    size: int
    mail_from: str
    rcpt_to: str
    now: float

    def header(self, name: str) -> list[str]:
        name = name.lower()
        return [v for n, v in self.headers if n.lower() == name]


@dataclass
class Outcome:
    """What a script decided for one recipient."""

    stores: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)   # (mailbox, flags)
    redirects: list[str] = field(default_factory=list)
    reject: str | None = None
    ereject: bool = False
    vacation: dict[str, Any] | None = None
    error: str | None = None


class _Run:
    def __init__(self, script: Compiled, message: MessageView, mailbox: str) -> None:
        self.script, self.msg, self.mailbox = script, message, mailbox
        self.out = Outcome()
        self.implicit_keep = True
        self.flags: list[str] = []
        self.variables: dict[str, str] = {}
        self.captures: list[str] = []
        self.actions = 0
        self.deadline = time.monotonic() + MAX_SECONDS

    # -- strings ------------------------------------------------------------------------------------
    def s(self, text: str) -> str:
        if not self.script.variables or "${" not in text:
            return text
        out, i = [], 0
        while i < len(text):
            start = text.find("${", i)
            end = text.find("}", start + 2) if start >= 0 else -1
            if start < 0 or end < 0:
                out.append(text[i:])
                break
            name = text[start + 2:end].lower()
            out.append(text[i:start])
            if name.isdigit():
                index = int(name)
                out.append(self.captures[index] if index < len(self.captures) else "")
            elif name.replace("_", "a").replace(".", "a").isalnum():
                out.append(self.variables.get(name, ""))
            else:
                out.append(text[start:end + 1])
            i = end + 1
        return "".join(out)

    def ss(self, texts: tuple[str, ...]) -> list[str]:
        return [self.s(t) for t in texts]

    # -- tests --------------------------------------------------------------------------------------
    def test(self, node: tuple[Any, ...]) -> bool:
        kind = node[0]
        if kind == "true":
            return True
        if kind == "false":
            return False
        if kind == "not":
            return not self.test(node[1])
        if kind == "anyof":
            return any(self.test(t) for t in node[1])
        if kind == "allof":
            return all(self.test(t) for t in node[1])
        if kind == "exists":
            return all(self.msg.header(h) for h in self.ss(node[1]))
        if kind == "header":
            values = [v for h in self.ss(node[2]) for v in self.msg.header(h)]
            return self.match(values, node[3], node[1])
        if kind in ("address", "envelope"):
            return self.match(self.addresses(kind, node[2], self.ss(node[3])), node[4], node[1])
        if kind == "body":
            return self.match([self.msg.body], node[2], node[1])
        if kind == "hasflag":
            return self.match(list(self.flags), node[2], node[1])
        if kind == "size":
            return bool(self.msg.size > node[2] if node[1] == ":over" else self.msg.size < node[2])
        if kind in ("date", "currentdate"):
            return self.date_test(node)
        raise SieveRuntimeError(f"unknown test {kind}")

    def match(self, values: list[str], keys: tuple[str, ...], how: Any) -> bool:
        ok, captures = matches(values, self.ss(keys), how)
        if ok and captures is not None and self.script.variables:
            self.captures = captures
        return ok

    def addresses(self, kind: str, part: str, names: list[str]) -> list[str]:
        if kind == "envelope":
            raw = [self.msg.mail_from if n.lower() == "from" else self.msg.rcpt_to for n in names
                   if n.lower() in ("from", "to")]
            found = [a for a in raw]
        else:
            found = [a for _, a in email.utils.getaddresses([v for n in names for v in self.msg.header(n)]) if a]
        if part == ":localpart":
            return [a.rpartition("@")[0] if "@" in a else a for a in found]
        if part == ":domain":
            return [a.rpartition("@")[2] if "@" in a else "" for a in found]
        return found

    def date_test(self, node: tuple[Any, ...]) -> bool:
        kind, how, headers, part, keys, zone = node
        when: list[datetime | float]
        if kind == "currentdate":
            when = [self.msg.now]
        else:
            when = [t for h in headers for v in self.msg.header(h) if (t := header_date(v)) is not None]
        values = [date_part(t, part, zone) for t in when]
        return self.match([v for v in values if v is not None], keys, how)

    # -- actions ------------------------------------------------------------------------------------
    def block(self, nodes: tuple[Any, ...]) -> None:
        for node in nodes:
            if time.monotonic() > self.deadline:
                raise SieveRuntimeError("script ran too long")
            if node[0] == "if":
                for test, body in node[1]:
                    if self.test(test):
                        self.block(body)
                        break
                else:
                    if node[2] is not None:
                        self.block(node[2])
            else:
                self.action(node)

    def action(self, node: tuple[Any, ...]) -> None:
        kind = node[0]
        self.actions += 1
        if self.actions > MAX_ACTIONS:
            raise SieveRuntimeError(f"more than {MAX_ACTIONS} actions")
        if kind == "stop":
            raise _Stop
        if kind == "set":
            self.variables[node[1]] = _modify(self.s(node[2]), node[3])
        elif kind in ("addflag", "setflag", "removeflag"):
            self.flag(kind, node[2])
        elif kind == "keep":
            self.store(self.mailbox, node[1])
            self.implicit_keep = False
        elif kind == "discard":
            self.implicit_keep = False
        elif kind == "fileinto":
            self.store(self.s(node[1]), node[2])
            self.implicit_keep = self.implicit_keep and node[3]
        elif kind == "redirect":
            if len(self.out.redirects) >= MAX_REDIRECTS:
                raise SieveRuntimeError(f"more than {MAX_REDIRECTS} redirects")
            address = self.s(node[1])
            if valid_address(address) != address:
                raise SieveRuntimeError(f"redirect to {address!r}: not an email address")
            self.out.redirects.append(address)
            self.implicit_keep = self.implicit_keep and node[2]
        elif kind in ("reject", "ereject"):
            self.out.reject, self.out.ereject = self.s(node[1]), kind == "ereject"
            self.implicit_keep = False
        elif kind == "vacation":
            request = dict(node[1])
            for key in ("reason", "subject", "from", "handle"):
                if request[key] is not None:
                    request[key] = self.s(request[key])
            request["addresses"] = tuple(self.ss(request["addresses"]))
            self.out.vacation = request

    def flag(self, kind: str, flags: tuple[str, ...]) -> None:
        given = [f for text in self.ss(flags) for f in text.split()]
        if kind == "setflag":
            self.flags = list(dict.fromkeys(given))
        elif kind == "addflag":
            self.flags = list(dict.fromkeys([*self.flags, *given]))
        else:
            drop = {f.lower() for f in given}
            self.flags = [f for f in self.flags if f.lower() not in drop]

    def store(self, mailbox: str, flags: tuple[str, ...] | None) -> None:
        chosen = self.flags if flags is None else [f for text in self.ss(flags) for f in text.split()]
        entry = (mailbox, tuple(chosen))
        if entry not in self.out.stores:
            self.out.stores.append(entry)


def _modify(value: str, modifiers: tuple[str, ...]) -> str:
    """RFC 5229 §4.1 modifiers, applied by precedence (length last)."""
    for modifier in modifiers:
        if modifier == ":lower":
            value = value.lower()
        elif modifier == ":upper":
            value = value.upper()
        elif modifier == ":lowerfirst":
            value = value[:1].lower() + value[1:]
        elif modifier == ":upperfirst":
            value = value[:1].upper() + value[1:]
        elif modifier == ":quotewildcard":
            value = value.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")
        elif modifier == ":length":
            value = str(len(value))
    return value


def evaluate(script: Compiled, message: MessageView, mailbox: str = "INBOX") -> Outcome:
    """The outcome of ``script`` for ``message``; an error means the implicit keep (with the error)."""
    run = _Run(script, message, mailbox)
    try:
        run.block(script.block)
    except _Stop:
        pass
    except (SieveRuntimeError, ValueError, IndexError, KeyError, TypeError) as exc:
        return Outcome(stores=[(mailbox, ())], error=str(exc))
    if run.implicit_keep:
        run.store(mailbox, None)
    return run.out
