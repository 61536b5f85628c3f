"""What command modules share with the protocol: states, tagged-error exceptions, the command table.

Each command family module registers its handlers with :func:`command`; ``protocol.py`` imports
them all and dispatches. A handler is ``async def (conn, tag, parser) -> str | None`` returning the
text of the tagged ``OK`` (``None`` when it already wrote its own tagged response), or raising
:class:`No` / :class:`Bad` (RFC 3501 §7.1).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import IntFlag
from typing import Any


class State(IntFlag):
    """Connection states (RFC 3501 §3)."""

    NOT_AUTH = 1
    AUTH = 2
    SELECTED = 4
    LOGOUT = 8


ANY = State.NOT_AUTH | State.AUTH | State.SELECTED
AUTHED = State.AUTH | State.SELECTED


class No(Exception):
    """Tagged ``NO``; ``code`` is a response code without brackets (``TRYCREATE``)."""

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.text = f"[{code}] {text}" if code else text


class Bad(Exception):
    """Tagged ``BAD``: the command was not understood or not allowed now."""

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.text = f"[{code}] {text}" if code else text


#: after a command, report pending mailbox changes: "full" (EXPUNGE too), "noexpunge" (FETCH,
#: STORE, SEARCH by sequence number: RFC 3501 §7.4.1), or "none"
SYNC_FULL, SYNC_NOEXPUNGE, SYNC_NONE = "full", "noexpunge", "none"

Handler = Callable[[Any, str, Any], Awaitable[str | None]]


@dataclass(frozen=True)
class Command:
    name: str
    handler: Handler
    states: State
    sync: str


COMMANDS: dict[str, Command] = {}


def command(name: str, states: State = AUTHED, sync: str = SYNC_FULL) -> Callable[[Handler], Handler]:
    """Register ``handler`` for ``name`` (``"UID FETCH"`` for the UID forms)."""

    def register(handler: Handler) -> Handler:
        COMMANDS[name] = Command(name, handler, states, sync)
        return handler

    return register


def by_number_and_uid(name: str, run: Callable[[Any, Any, bool], Awaitable[str]],
                      sync: str = SYNC_NOEXPUNGE) -> None:
    """Register NAME (message sequence numbers) and UID NAME (UIDs) for the selected state.

    ``run(conn, parser, uid)`` does the work of both. The sequence-number form defaults to no
    EXPUNGE responses after it: they would renumber the messages it names (RFC 3501 §7.4.1).
    """

    async def numbered(conn: Any, tag: str, p: Any) -> str:
        return await run(conn, p, False)

    async def by_uid(conn: Any, tag: str, p: Any) -> str:
        return await run(conn, p, True)

    command(name, State.SELECTED, sync)(numbered)
    command("UID " + name, State.SELECTED, SYNC_FULL)(by_uid)


def store_error(exc: Exception) -> No:
    """A mail store refusal as a tagged NO with the RFC 5530 response code."""
    code = {
        "quota_exceeded": "OVERQUOTA",
        "mailbox_not_found": "NONEXISTENT",
        "mailbox_exists": "ALREADYEXISTS",
        "invalid_mailbox_name": "CANNOT",
        "mailbox_in_use": "CANNOT",
        "keyword_limit": "LIMIT",
    }.get(getattr(exc, "code", ""))
    return No(getattr(exc, "message", None) or str(exc) or "Operation failed", code)
