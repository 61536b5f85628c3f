"""Write a Sieve ``Plan`` inside the delivery transaction (called from ``smtp.batch.deliver_job``).

Copies go to their mailboxes (a ``fileinto`` target is created if missing, as Dovecot's
``:create`` would), redirects and notices to local addresses are stored in the target's INBOX
directly (their own scripts do not run again: no loops between two users' redirects), remote ones
go into the outbound queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tau.auth import accounts
from tau.mail.sieve import store
from tau.mail.sieve.plan import Plan
from tau.storage.database import Txn


def forward(txn: Txn, ctx: Any, owner: str, mail_from: str, address: str, key: str, size: int, fields: Any,
            message_id: str | None) -> None:
    from tau.mail.store import messages, queue

    domain = address.rpartition("@")[2]
    if not accounts.is_local_domain(txn, domain):
        queue.enqueue(txn, owner, mail_from, [address], key, size, message_id, ctx)
        return
    targets = accounts.resolve_recipient(txn, address)
    local = sorted(t for t in targets if accounts.is_local_domain(txn, t.rpartition("@")[2]))
    remote = [t for t in targets if t not in local]
    if local:
        messages.deliver(txn, ctx, local, key, size, fields, "INBOX", (), None, None, {"via": "sieve"})
    if remote:
        queue.enqueue(txn, owner, mail_from, remote, key, size, message_id, ctx)


def apply(txn: Txn, ctx: Any, plan: Plan, key: str, size: int, fields: Any, message_id: str | None,
          mail_from: str, origin: dict[str, str] | None) -> None:
    from tau.mail.store import mailboxes, messages
    from tau.mail.store.api import InvalidMailboxName
    from tau.mail.store.names import normalize_mailbox_name

    groups: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for user, mailbox, flags in plan.placements:
        groups.setdefault((mailbox, flags), []).append(user)
    for (mailbox, flags), users in sorted(groups.items()):
        for user in set(users):            # fileinto a missing mailbox creates it (RFC 5490 :create)
            try:
                name = normalize_mailbox_name(mailbox)
            except InvalidMailboxName:
                continue                   # the store files it into INBOX
            if mailboxes.get_mailbox(txn, ctx, user, name) is None:
                mailboxes.create_mailbox(txn, ctx, user, name)
        messages.deliver(txn, ctx, sorted(set(users)), key, size, fields, mailbox, flags, None, None, origin)
    for owner, address in plan.redirects:
        forward(txn, ctx, owner, mail_from, address, key, size, fields, message_id)
    for notice in plan.notices:
        forward(txn, ctx, notice.owner, "", notice.rcpt, notice.key, notice.size, notice.fields, notice.message_id)
    for user, sender, handle, period in plan.answered:
        store.remember_answer(txn, user, sender, handle, period)


def users_of(plan: Plan) -> Sequence[str]:
    return sorted({user for user, _, _ in plan.placements})
