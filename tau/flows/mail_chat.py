"""Mail → chat: ``POST /api/emails/{id}/chat`` opens a conversation with the local correspondents.

The conversation is a plaintext one (``encrypted: false``): the server starts it with a first
message naming the email, which an end-to-end conversation could not carry, and never writes the
mail into an end-to-end conversation. The answer says so plainly (issue 20):
``"end_to_end_encrypted": false`` and a ``warning`` sentence, and, when the two users already have
an end-to-end encrypted direct conversation, its id as ``encrypted_conversation`` so the client
can carry on there instead (its own devices encrypt whatever it chooses to quote). A direct
conversation when there is one other local correspondent, a group titled with the subject
otherwise; the members' sockets learn about it through the bus on whatever node they are.
"""

from __future__ import annotations

from typing import Any

from tau.flows.common import Mail, local_users, refuse


async def open_chat(flows: Any, user: Any, mail: Mail, body: dict[str, Any]) -> dict[str, Any]:
    from tau.messenger.errors import MessengerError

    members = await local_users(flows.registry, mail.people, user.address)
    if not members:
        raise refuse(MessengerError(409, "no_local_correspondents", "nobody else on this message has an account here"))
    kind = "direct" if len(members) == 1 else "group"
    try:
        conv = await flows.messenger.create_conversation(user, {"kind": kind, "members": [user.address, *members],
                                                                "title": mail.subject[:200], "encrypted": False})
        text = str(body.get("text") or f"About the email \"{mail.subject}\" from {mail.sender}")[:4000]
        first = await flows.messenger.send(user, {"conversation": conv["id"], "body": text})
    except MessengerError as exc:
        raise refuse(exc)
    existing = await flows.messenger.encrypted_direct(user, members[0]) if kind == "direct" else None
    warning = "this conversation is not end-to-end encrypted: the server can read it"
    if existing is not None:
        warning += f"; your end-to-end encrypted conversation with {members[0]} is {existing}"
    return {"conversation": conv, "members": members, "message": first, "end_to_end_encrypted": False,
            "warning": warning, "encrypted_conversation": existing}
