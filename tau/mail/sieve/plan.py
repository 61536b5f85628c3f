"""Sieve at local delivery: run each recipient's active script before the delivery transaction.

The recipient lookup at RCPT reads each recipient's active script and the vacation handles that
answered this sender recently (``store.delivery_state``), so end of data adds no read; scripts
are compiled once per process (``compile.cached``). The ``Plan`` says where the copies go, what
is redirected and which vacation answers or rejection notices to send; ``commit.apply`` writes
all of it in the delivery transaction, so the 250 still means everything is durable. Recipients
without an active script get the plain delivery.

Envelope sender policy (no SRS): a redirect keeps the original envelope sender (as Postfix's
``.forward`` and Pigeonhole do), so SPF may fail at the next hop where DKIM does not carry the
message; vacation answers and rejection notices go with the null sender (RFC 5230 §5.4, RFC 3834).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from tau.auth import accounts
from tau.mail.compose import valid_address
from tau.mail.mime import parse_message
from tau.mail.sieve import vacation
from tau.mail.sieve.compile import ScriptError, cached
from tau.mail.sieve.interpret import MessageView, Outcome, evaluate
from tau.mail.sieve.store import DeliveryState
from tau.storage.database import Txn

if TYPE_CHECKING:
    from tau.registry import Registry

log = Logger()


@dataclass
class Notice:
    """A message the server sends for a recipient (vacation answer, rejection notice)."""

    owner: str
    rcpt: str
    key: str
    size: int
    fields: Any
    message_id: str | None


@dataclass
class Plan:
    placements: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)   # (user, mailbox, flags)
    redirects: list[tuple[str, str]] = field(default_factory=list)                     # (user, address)
    notices: list[Notice] = field(default_factory=list)
    answered: list[tuple[str, str, str, int]] = field(default_factory=list)            # (user, sender, handle, s)
    rejected: dict[str, str] = field(default_factory=dict)                             # user → reason

    @property
    def stores_nothing(self) -> bool:
        return not self.placements and not self.redirects


def view(parsed: Any, size: int, mail_from: str, rcpt: str, now: float) -> MessageView:
    return MessageView(tuple(parsed.headers), getattr(parsed, "text_for_search", "") or "", size, mail_from,
                       rcpt, now)


def outcome_for(script: str, message: MessageView, mailbox: str) -> Outcome:
    try:
        compiled = cached(script)
    except ScriptError as exc:          # stored before a limit changed: never lose the mail
        return Outcome(stores=[(mailbox, ())], error=exc.text)
    return evaluate(compiled, message, mailbox)


async def make_plan(registry: Registry, state: DeliveryState, users: list[str], mail_from: str, parsed: Any,
                    size: int, mailbox: str) -> Plan | None:
    """The plan for ``users`` given their scripts (read at RCPT), or None when none has one."""
    if not state.scripts:
        return None
    plan = Plan()
    now = registry.clock.seconds()
    hostname = registry.config.tau.hostname
    for user in users:
        script = state.scripts.get(user.lower())
        if script is None:
            plan.placements.append((user, mailbox, ()))
            continue
        message = view(parsed, size, mail_from, user, now)
        outcome = outcome_for(script, message, mailbox)
        if outcome.error:
            log.warn("sieve script of {user} failed: {error}", user=user, error=outcome.error)
        plan.placements += [(user, box, flags) for box, flags in outcome.stores]
        plan.redirects += [(user, address) for address in outcome.redirects]
        if outcome.reject is not None:
            plan.rejected[user] = outcome.reject
        request = outcome.vacation
        if request is not None and outcome.reject is None:
            tag = vacation.handle(request)
            if tag not in state.answered.get(user.lower(), set()) and vacation.should_answer(message, user, request):
                if request.get("from") and not await registry.db.run(
                        "sieve_vacation_from", may_send_as, user, request["from"], readonly=True):
                    request = {**request, "from": None}      # only an address the user may send as
                raw = vacation.reply(message, user, request, hostname)
                plan.notices.append(await notice(registry, user, mail_from, raw))
                plan.answered.append((user, mail_from, tag, vacation.period(request)))
    return plan


def may_send_as(txn: Txn, user: str, value: str) -> bool:
    address = valid_address(value)
    account = accounts.get_user(txn, user)
    return address is not None and account is not None and accounts.user_may_send_as(txn, account, address)


async def add_rejection_notices(registry: Registry, plan: Plan, parsed: Any, size: int, mail_from: str) -> None:
    """``reject`` after the message was accepted (RFC 5429 §2.1): tell the envelope sender."""
    if not mail_from:
        return
    for user, reason in plan.rejected.items():
        message = view(parsed, size, mail_from, user, registry.clock.seconds())
        raw = vacation.rejection(message, user, reason, registry.config.tau.hostname)
        plan.notices.append(await notice(registry, user, mail_from, raw))


async def notice(registry: Registry, owner: str, rcpt: str, raw: bytes) -> Notice:
    from tau.mail.store.fields import prepare

    writer = registry.blobs.writer()
    await writer.write(raw)
    info = await writer.commit()
    parsed = parse_message(raw)
    return Notice(owner, rcpt, info.key, info.size, prepare(parsed), parsed.message_id)
