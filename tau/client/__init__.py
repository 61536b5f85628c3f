"""``tau.client``: a Python client for tau's messenger, with end-to-end encryption on the client.

The server relays ciphertext only; keys never leave this process (or the state file you
choose). X3DH (``tau.client.x3dh``) sets up a session with each device of each peer, the
Double Ratchet (``tau.client.ratchet``) encrypts every message, both on the ``cryptography``
package's primitives.

Example::

    import asyncio
    from tau.client import Client

    async def main():
        alice = await Client.login("http://127.0.0.1:18080", "alice@example.test", "secret")
        await alice.connect()                       # /ws/messages: queued, then live messages
        await alice.send("hello bob", to="bob@example.test")
        msg = await alice.next_message(timeout=30)  # a tau.client.Message, already decrypted
        print(msg.sender, msg.text)
        await alice.disconnect()

    asyncio.run(main())

Sessions (``tau.client.sessions``) survive crossing and simultaneous sends: per peer device a
current session plus up to 40 archived states, PreKey messages matched to the state they
started, identity keys pinned (a re-installed peer is reported as a safety-number change:
``Message.notice``, ``send()``'s ``identity_changes``). Groups are pairwise fan-out: one
envelope per member device (``tests/bench/bench_group_fanout.py`` measures it); a membership
change reaches the sender as a 409 and its retry leaves removed members out.

``Client.login(..., state_path=PATH)`` keeps the device's keys and sessions in ``PATH``
(mode 0600) and ``Client.from_file(PATH)`` resumes it; ``tau chat`` is built that way. Every
change to that file is a locked reload-modify-save, so ``tau chat send`` and ``tau chat listen``
can run at once on one device.
Lower layers: ``tau.client.rest.Rest`` (REST calls, blocking) and ``tau.client.ws.Socket``
(JSON WebSocket on autobahn asyncio). ``tau.client.call.CallClient`` joins calls with aiortc media
(the ``connect`` extra); it is not imported here, so the rest works without aiortc.
"""

from tau.client.device import DeviceState
from tau.client.messenger import Client, Message
from tau.client.rest import ApiError, Rest
from tau.client.ws import Closed, Socket

__all__ = ["ApiError", "Client", "Closed", "DeviceState", "Message", "Rest", "Socket"]
