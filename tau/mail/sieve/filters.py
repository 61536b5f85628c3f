"""Sieve for mail sent with ``POST /api/emails`` to local users (the API's submission path).

The same plan as SMTP delivery (``plan.make_plan``): the recipients' scripts and vacation memory
are read first, the plan is made outside the transaction (vacation answers are written to the
blob store), and ``compose.send_txn`` calls the returned function to store the local copies in
its transaction. No script among the recipients: None, and ``send_txn`` delivers as before.
A ``reject`` cannot refuse an API call half-way; the sender gets the rejection notice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tau.auth import accounts
from tau.mail.mime import parse_message
from tau.mail.sieve import commit, plan
from tau.mail.sieve.store import DeliveryState, delivery_state
from tau.storage.database import Txn

if TYPE_CHECKING:
    from tau.registry import Registry


def _state(txn: Txn, keyring: Any, recipients: list[str], mail_from: str) -> tuple[list[str], DeliveryState]:
    local: list[str] = []
    for rcpt in recipients:
        if accounts.is_local_domain(txn, rcpt.rpartition("@")[2]):
            local += [t for t in accounts.resolve_recipient(txn, rcpt)
                      if accounts.is_local_domain(txn, t.rpartition("@")[2])]
    local = sorted(set(local))
    return local, delivery_state(txn, keyring, local, mail_from)


async def local_delivery(registry: Registry, ctx: Any, recipients: list[str], mail_from: str, raw: bytes,
                         key: str, size: int, fields: Any, message_id: str | None,
                         sender: str) -> Callable[[Txn, list[str]], None] | None:
    local, state = await registry.db.run("sieve_api_state", _state, registry.keyring, recipients, mail_from,
                                         readonly=True)
    if not local or not state.scripts:
        return None
    parsed = await registry.run_in_thread(parse_message, raw)
    made = await plan.make_plan(registry, state, local, mail_from, parsed, size, "INBOX")
    if made is None:
        return None
    if made.rejected:
        await plan.add_rejection_notices(registry, made, parsed, size, mail_from)
    origin = {"via": "submission", "user": sender}

    def deliver(txn: Txn, resolved: list[str]) -> None:
        known = {user for user, _, _ in made.placements} | set(made.rejected) | {u for u, _ in made.redirects}
        extra = [u for u in resolved if u not in known and u.lower() not in state.scripts]
        made.placements.extend((u, "INBOX", ()) for u in extra)      # resolved since: plain delivery
        commit.apply(txn, ctx, made, key, size, fields, message_id, mail_from, origin)

    return deliver
