"""The high-level messenger client: log in, register a device, send and receive E2E messages.

Sending encrypts the message once per recipient device and once per the sender's other
devices; when the server answers ``device_mismatch`` (a device was added, removed or
re-installed) the client fetches the missing bundles, drops stale sessions and retries, as
Signal clients do. Receiving decrypts each pushed envelope, hands the plaintext to the
application and then acknowledges it, so the server deletes its copy only after processing;
a message redelivered after a lost ack is recognised by id and acknowledged again.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tau.client import attachments
from tau.client.device import DecryptError, DeviceState
from tau.client.rest import ApiError, Rest
from tau.client.ws import Closed, Socket

RETRIES = 5


@dataclass
class Message:
    id: str
    conversation: str
    sender: str
    sender_device: int
    timestamp: str
    text: str | None
    encrypted: bool
    attachments: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None  # set when an envelope could not be decrypted
    notice: str | None = None  # set on a notice from this client (a safety-number change), not a message


def _identity_notice(change: dict[str, Any]) -> str:
    return (f"safety number with {change['user']} device {change['device_id']} changed "
            f"(re-installed or a new key: verify it) — was {change['old']}, now {change['new']}")


class Client:
    """One device of one user. Async; REST calls run in threads, the socket on the event loop."""

    def __init__(self, base_url: str, state: DeviceState, rest: Rest, state_path: str | Path | None = None) -> None:
        self.base_url = base_url
        self.state = state
        self.rest = rest
        self.state_path = state_path
        self.socket: Socket | None = None
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._members: dict[str, list[str]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._lock_depth = 0

    @property
    def user(self) -> str:
        return self.state.user

    @property
    def device_id(self) -> int:
        return self.state.device_id

    @classmethod
    async def login(cls, base_url: str, username: str, password: str, device_id: int | None = None,
                    state_path: str | Path | None = None, one_time_prekeys: int = 50,
                    verify_tls: bool = True) -> "Client":
        """Obtain tokens, create this device's keys and publish its bundle."""
        rest = Rest(base_url, verify_tls=verify_tls)
        await asyncio.to_thread(rest.login, username, password)
        state = DeviceState(username.lower(), device_id)
        client = cls(base_url, state, rest, state_path)
        await asyncio.to_thread(rest.put_keys, state.upload(one_time_prekeys))
        try:  # our registration id (the server's): sent in X3DH headers so peers can be told "stale"
            mine = await asyncio.to_thread(rest.bundles, state.user, state.device_id)
            state.registration_id = int(mine[0]["registration_id"]) if mine else 0
        except (ApiError, KeyError, ValueError):
            state.registration_id = 0
        client.save()
        return client

    @classmethod
    def from_file(cls, path: str | Path, verify_tls: bool = True) -> "Client":
        state = DeviceState.load(path)
        rest = Rest(state.extra["server"], state.extra.get("token"), state.extra.get("refresh_token"),
                    verify_tls=verify_tls)
        return cls(state.extra["server"], state, rest, path)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Read-modify-write of the state file under an exclusive lock (``tau chat send`` and
        ``tau chat listen`` may run at once on one device): reload, change, save. Re-entrant."""
        if self.state_path is None or self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        path = Path(self.state_path)
        with open(path.with_name(path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._lock_depth += 1
            try:
                if path.exists():
                    self.state = DeviceState.load(path)
                yield
                self.save()
            finally:
                self._lock_depth -= 1
                fcntl.flock(lock, fcntl.LOCK_UN)

    def save(self) -> None:
        if self.state_path is not None:
            self.state.extra.update(server=self.base_url, token=self.rest.token, refresh_token=self.rest.refresh_token)
            self.state.save(self.state_path)

    # -- sending ----------------------------------------------------------------------------------
    async def send(self, text: str, to: str | None = None, conversation: str | None = None,
                   attachments: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Send an E2E message to a user (direct conversation) or a conversation id."""
        if (to is None) == (conversation is None):
            raise ValueError("give to or conversation")
        payload = json.dumps({"body": text, "attachments": attachments or [], "sent_at": int(time.time() * 1000)},
                             ensure_ascii=False).encode()
        target: dict[str, Any] = {"to": to.lower()} if to else {"conversation": str(conversation)}
        members = [self.user, to.lower()] if to else await self._conversation_members(str(conversation))
        with self.locked():
            result = await self._send(payload, target, members, conversation)
            # peer devices found with a new identity key while sending (re-installed): for the user to verify
            return {**result, "identity_changes": [_identity_notice(c) for c in self.state.identity_changes()]}

    async def _send(self, payload: bytes, target: dict[str, Any], members: list[str],
                    conversation: str | None) -> dict[str, Any]:
        for attempt in range(RETRIES):
            envelopes = self.state.envelopes(members, payload)
            body = {**target, "device_id": self.device_id, "envelopes": envelopes}
            try:
                result = await asyncio.to_thread(self.rest.post_message, body)
            except ApiError as exc:
                if exc.error != "device_mismatch" or attempt == RETRIES - 1:
                    raise
                if conversation:
                    members = await self._conversation_members(str(conversation), refresh=True)
                await self._repair(exc.body, members)
                continue
            return result
        raise AssertionError("unreachable")

    async def send_file(self, data: bytes, name: str, conversation: str, text: str = "",
                        content_type: str = "application/octet-stream") -> dict[str, Any]:
        """Encrypt ``data`` here, upload the ciphertext bound to ``conversation``, send its pointer."""
        blob, pointer = attachments.seal(data, name, content_type)
        path = f"/api/messages/attachments?conversation={quote(str(conversation))}"
        made = json.loads(await asyncio.to_thread(self.rest.raw, "POST", path, blob))
        return await self.send(text, conversation=str(conversation), attachments=[{**pointer, "id": made["id"]}])

    async def download(self, pointer: dict[str, Any]) -> bytes:
        """An attachment a message pointed to: downloaded, digest-checked and decrypted."""
        blob = await asyncio.to_thread(self.rest.raw, "GET", f"/api/messages/attachments/{quote(pointer['id'])}")
        return attachments.open_attachment(pointer, blob)

    async def send_plain(self, text: str, to: str | None = None, conversation: str | None = None) -> dict[str, Any]:
        """A message in a plaintext conversation (bots, integrations): the server sees the text."""
        body: dict[str, Any] = {"to": to} if to else {"conversation": str(conversation)}
        return await asyncio.to_thread(self.rest.post_message, {**body, "body": text, "device_id": self.device_id})

    async def _conversation_members(self, conv_id: str, refresh: bool = False) -> list[str]:
        if refresh or conv_id not in self._members:
            conv = await asyncio.to_thread(self.rest.conversation, conv_id)
            self._members[conv_id] = conv["members"]
        return self._members[conv_id]

    async def _repair(self, answer: dict[str, Any], members: list[str]) -> None:
        """Fix the device lists after a 409/410 (``DeviceState.repair``), fetching bundles it asks for."""
        for user, device in self.state.repair(answer):
            for bundle in await asyncio.to_thread(self.rest.bundles, user, device):
                self.state.start_session(user, bundle)

    # -- receiving --------------------------------------------------------------------------------
    async def connect(self, token_in_query: bool = False) -> None:
        """Open ``/ws/messages``; queued messages arrive first, then live ones."""
        self.events = asyncio.Queue()  # frames of an earlier connection mean nothing now
        self.socket = await Socket.connect(self.base_url, "/ws/messages", self.rest.token,
                                           {"device_id": self.device_id}, token_in_query=token_in_query)
        self._reader = asyncio.get_running_loop().create_task(self._read(self.socket))

    async def disconnect(self, abort: bool = False) -> None:
        if self.socket is not None:
            if abort:
                self.socket.abort()
            else:
                await self.socket.close()
        if self._reader is not None:
            try:
                await asyncio.wait_for(self._reader, 5)
            except (TimeoutError, Closed):
                self._reader.cancel()
        self.socket, self._reader = None, None

    async def _read(self, sock: Socket) -> None:
        try:
            while True:
                frame = await sock.recv()
                if frame.get("type") == "message":
                    await self._handle_message(sock, frame)
                elif frame.get("type") == "prekeys_low":
                    await self._replenish()
                    self.events.put_nowait(frame)
                else:
                    self.events.put_nowait(frame)
        except Closed as exc:
            self.events.put_nowait({"type": "closed", "code": exc.code, "reason": exc.reason})

    async def _handle_message(self, sock: Socket, frame: dict[str, Any]) -> None:
        with self.locked():
            if not self.state.mark_seen(frame["id"]):  # a redelivery after a lost ack (maybe by another process)
                sock.send({"type": "ack", "ids": [frame["id"]]})
                return
            text, attachments, error = frame.get("body"), frame.get("attachments", []), None
            if frame.get("encrypted"):
                try:
                    plain = json.loads(self.state.decrypt(frame["from"], frame["from_device"], frame["envelope"]))
                    text, attachments = plain.get("body"), plain.get("attachments", [])
                except (DecryptError, KeyError, ValueError, TypeError, AttributeError) as exc:
                    text, error = None, str(exc) or type(exc).__name__
            changes = self.state.identity_changes()
            for user, device in self.state.sessions_to_restart():
                for bundle in await asyncio.to_thread(self.rest.bundles, user, device):
                    self.state.start_session(user, bundle)
        for change in changes:  # shown before the message that revealed them
            self.inbox.put_nowait(Message(frame["id"], frame["conversation"], change["user"], change["device_id"],
                                          frame["timestamp"], None, True, notice=_identity_notice(change)))
        self.inbox.put_nowait(Message(frame["id"], frame["conversation"], frame["from"], frame["from_device"],
                                      frame["timestamp"], text, bool(frame.get("encrypted")), attachments, error))
        sock.send({"type": "ack", "ids": [frame["id"]]})

    async def _replenish(self, count: int = 50) -> None:
        with self.locked():
            await asyncio.to_thread(self.rest.put_keys, self.state.upload(count))

    async def next_message(self, timeout: float = 10.0) -> Message:
        return await asyncio.wait_for(self.inbox.get(), timeout)

    async def next_event(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        """The next pushed frame of one type (presence, receipt, typing, synced...); others are skipped."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            frame = await asyncio.wait_for(self.events.get(), max(0.0, deadline - loop.time()))
            if frame.get("type") == kind:
                return frame

    def hold_unread(self) -> int:
        """Keep messages decrypted (and acknowledged) but not yet taken from the inbox in the state
        file, for :meth:`take_held` in a later process: a ratchet decrypts each message once only."""
        held = []
        while not self.inbox.empty():
            held.append(self.inbox.get_nowait().__dict__)
        if held:
            with self.locked():
                self.state.extra["held"] = self.state.extra.get("held", []) + held
        return len(held)

    def take_held(self) -> list[Message]:
        """Messages an earlier process decrypted but did not show, oldest first (removed from the file)."""
        with self.locked():
            held = self.state.extra.pop("held", [])
        return [Message(**m) for m in held]

    async def messages(self) -> AsyncIterator[Message]:
        while True:
            yield await self.inbox.get()

    # -- the rest ---------------------------------------------------------------------------------
    def read(self, conversation: str, ids: list[str]) -> None:
        """Send read receipts over the socket."""
        if self.socket is not None:
            self.socket.send({"type": "receipt", "kind": "read", "conversation": conversation, "ids": ids})

    def typing(self, conversation: str, started: bool = True) -> None:
        if self.socket is not None:
            self.socket.send({"type": "typing", "conversation": conversation,
                              "state": "started" if started else "stopped"})

    async def presence(self, users: list[str]) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.rest.presence, users)

    async def set_presence(self, status: str) -> None:
        await asyncio.to_thread(self.rest.set_presence, status)
