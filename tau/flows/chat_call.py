"""Chat → call: a ``call.start`` frame on ``/ws/messages`` creates a call with the conversation's
members and rings them.

The frame is ``{"type": "call.start", "conversation": ID, "ref"?}``; the sender must be a member
(the messenger's own membership check answers otherwise). TauConnect rings every member's
``/ws/signal`` sockets, on whatever node they are, through ``call.updated`` on the bus. In a
plaintext conversation the join link is also posted as a message; in an end-to-end one the
server cannot write messages, so the sender gets the link in the answer frame to share itself.
"""

from __future__ import annotations

from typing import Any

from tau.messenger.errors import MessengerError


async def start(sock: Any, frame: dict[str, Any]) -> dict[str, Any]:
    from tau.messenger.domain import int_id

    flows = sock.registry.flows if sock.registry.serving("flows") else None
    if flows is None:
        raise MessengerError(503, "calls_unavailable", "calls are not enabled")
    conv = await sock.messenger.get_conversation(sock.user, int_id(frame.get("conversation"), "conversation"))
    others = [m for m in conv["members"] if m != sock.user.address]
    call = await flows.calls.create(sock.user, {"title": conv.get("title") or "Call", "participants": others})
    if not conv.get("encrypted"):
        await sock.messenger.send(sock.user, {"conversation": conv["id"], "body": f"Join the call: {call['join_url']}"})
    out = {"type": "call.started", "conversation": conv["id"], "call_id": call["id"], "join_url": call["join_url"],
           "participants": others}
    if "ref" in frame:
        out["ref"] = frame["ref"]
    sock.send_json(out)
    return out
