"""Mail → call: ``POST /api/emails/{id}/call`` starts a call with the message's correspondents.

Local correspondents are invited (TauConnect rings every socket they hold, on any node, through
the bus); everyone else on the message, local or not, gets the join link by mail, so a remote
correspondent can still join from the link.
"""

from __future__ import annotations

from typing import Any

from tau.flows.common import Mail, local_users, refuse
from tau.mail.errors import MailError


async def start_call(flows: Any, user: Any, mail: Mail, body: dict[str, Any]) -> dict[str, Any]:
    from tau.connect.store import CallError

    invitees = await local_users(flows.registry, mail.people, user.address)
    title = str(body.get("title") or mail.subject or "Call")[:200]
    try:
        call = await flows.calls.create(user, {"title": title, "participants": invitees})
    except CallError as exc:
        raise refuse(exc)
    others = [p for p in mail.people if p != user.address.lower()]
    if others and body.get("notify", True):
        try:
            text = f"{user.address} started a call about \"{mail.subject}\".\n\nJoin: {call['join_url']}\n"
            await flows.send_mail(user, others, f"Call: {title}", text)
        except MailError as exc:
            raise refuse(exc)
    return {"call": call, "invited": invitees, "mailed": others if body.get("notify", True) else []}
