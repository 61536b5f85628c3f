"""The messenger's operations, shared by the REST API and the WebSocket: validate, store, publish.

Every change is published on the event bus *after commit* (``txn.call_after``), and real-time
delivery consumes only the bus, so a Redis-backed bus (issue 9) carries it between nodes with
no change here. Topics: ``message.created``, ``message.receipt``, ``message.typing``,
``message.conversation``, ``presence.changed``, ``keys.low``. Events name their audience
(addresses) so a consumer needs no database read to route them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger

from tau.auth.accounts import AccountError, User, normalize_address
from tau.bus import events
from tau.clock import Clock
from tau.messenger import conversations as convs
from tau.messenger import keys, messages
from tau.messenger.errors import MessengerError
from tau.messenger.presence import STATUSES, create_presence
from tau.storage.database import Txn

if TYPE_CHECKING:
    from tau.registry import Registry

log = Logger()
MAX_ENVELOPES = 1000
MAX_ATTACHMENTS = 32


def rfc3339_ms(ms: int | float) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def present(item: dict[str, Any]) -> dict[str, Any]:
    """The public form of a stored message: RFC 3339 timestamp instead of milliseconds."""
    out = {k: v for k, v in item.items() if k != "timestamp_ms"}
    out["timestamp"] = rfc3339_ms(item["timestamp_ms"])
    return out


def address(value: Any, what: str = "user") -> str:
    if not isinstance(value, str):
        raise MessengerError(400, "invalid_address", f"{what} must be an address")
    try:
        return normalize_address(value)
    except AccountError as exc:
        raise MessengerError(400, exc.code, exc.message)


MAX_TITLE = 200


def valid_title(value: Any) -> bool:
    """A title is shown in every member's client and in digest mails: short, printable text.

    Control characters are refused too (PostgreSQL cannot store NUL in text at all)."""
    return (isinstance(value, str) and len(value) <= MAX_TITLE
            and not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in value))


def int_id(value: Any, what: str) -> int:
    """Ids travel as strings (JSON numbers lose precision in browsers); integers are accepted too."""
    if isinstance(value, bool):
        raise MessengerError(400, "invalid_request", f"{what} must be an id")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise MessengerError(400, "invalid_request", f"{what} must be an id")
    if not 0 <= number < 2**63:
        raise MessengerError(400, "invalid_request", f"{what} is out of range")
    return number


def id_list(value: Any, what: str, limit: int = 1000) -> list[int]:
    if not isinstance(value, list) or len(value) > limit:
        raise MessengerError(400, "invalid_request", f"{what} must be a list of at most {limit} ids")
    return sorted({int_id(v, what) for v in value})


class Messenger:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.db = registry.db
        self.bus = registry.bus
        self.clock: Clock = registry.clock
        self.presence = create_presence(registry, self._presence_changed)
        #: ``/ws/messages`` frame type → ``async (socket, frame)`` another service answers (the flows
        #: add ``call.start``): the messenger runs them without importing their services
        self.frame_hooks: dict[str, Callable[[Any, dict[str, Any]], Awaitable[Any]]] = {}

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    async def _run(self, name: str, fn: Any, *args: Any) -> Any:
        try:
            return await self.db.run(name, fn, *args)
        except keys.BadKeys as exc:
            raise MessengerError(400, exc.code, exc.message)

    async def user_id(self, who: str) -> int:
        found = await self.db.run("msg_user_ids", convs.user_ids, [who], readonly=True)
        if who not in found:
            raise MessengerError(404, "user_not_found", f"no user {who}")
        return found[who]

    # -- keys -----------------------------------------------------------------------------------
    async def upload_keys(self, user: User, body: dict[str, Any]) -> int:
        try:
            upload = keys.parse_upload(body)
        except keys.BadKeys as exc:
            raise MessengerError(400, exc.code, exc.message)
        return int(await self._run("msg_keys_upload", keys.store_upload, user.id, upload, int(self.clock.seconds())))

    async def fetch_bundles(self, target: str, device_id: int | None) -> list[dict[str, Any]]:
        who = address(target)
        uid = await self.user_id(who)

        def claim(txn: Txn) -> list[dict[str, Any]]:
            bundles, low = keys.claim_bundles(txn, uid, device_id)
            for dev, remaining in low:
                txn.call_after(self.bus.publish, events.KEYS_LOW,
                               {"user": who, "device_id": dev, "remaining": remaining})
            return bundles

        return list(await self.db.run("msg_keys_claim", claim))

    async def prekey_counts(self, user: User) -> list[dict[str, int]]:
        def counts(txn: Txn) -> list[dict[str, int]]:
            return [{"device_id": d, "one_time_prekeys": keys.prekey_count(txn, user.id, d) or 0}
                    for d in keys.device_ids(txn, user.id)]

        return list(await self.db.run("msg_keys_counts", counts, readonly=True))

    async def device_registered(self, user: User, device_id: int) -> bool:
        return await self.db.run("msg_device_exists", keys.prekey_count, user.id, device_id, readonly=True) is not None

    async def prekeys_left(self, user: User, device_id: int) -> int | None:
        return await self.db.run("msg_prekeys_left", keys.prekey_count, user.id, device_id, readonly=True)

    async def delete_device(self, user: User, device_id: int) -> bool:
        return bool(await self.db.run("msg_device_delete", keys.delete_device, user.id, device_id))

    # -- conversations ----------------------------------------------------------------------------
    async def create_conversation(self, user: User, body: dict[str, Any]) -> dict[str, Any]:
        kind = body.get("kind", "group")
        encrypted = body.get("encrypted", True)
        title = body.get("title", "")
        members = body.get("members", [])
        if kind not in ("direct", "group") or not isinstance(encrypted, bool) or not valid_title(title):
            raise MessengerError(400, "invalid_request", "kind is direct|group, encrypted a boolean, title a string"
                                 f" of at most {MAX_TITLE} printable characters")
        if not isinstance(members, list) or len(members) > convs.MAX_MEMBERS:
            raise MessengerError(400, "invalid_request", "members must be a list of addresses")
        wanted = sorted({address(m, "members[]") for m in members})
        found = await self.db.run("msg_user_ids", convs.user_ids, wanted, readonly=True)
        unknown = [m for m in wanted if m not in found]
        if unknown:
            raise MessengerError(404, "user_not_found", "unknown users: " + ", ".join(unknown))
        now = self.now_ms()
        if kind == "direct":
            others = [found[m] for m in wanted if m != user.address]
            if len(others) > 1:
                raise MessengerError(400, "invalid_request", "a direct conversation has one other member")
            other = others[0] if others else user.id

            def direct(txn: Txn) -> dict[str, Any]:
                conv_id, _ = convs.find_or_create_direct(txn, user.id, other, encrypted, now)
                return convs.get_for_member(txn, conv_id, user.id)

            conv = await self.db.run("msg_conv_direct", direct)
        else:
            def group(txn: Txn) -> dict[str, Any]:
                conv_id = convs.create_group(txn, user.id, list(found.values()), title, encrypted, now)
                conv = convs.get_for_member(txn, conv_id, user.id)
                txn.call_after(self._publish_conversation, conv, conv["members"])
                return conv

            conv = await self.db.run("msg_conv_group", group)
        return self._present_conv(conv)

    async def encrypted_direct(self, user: User, other: str) -> str | None:
        """The id of the end-to-end encrypted direct conversation of ``user`` and ``other``, if any."""
        def find(txn: Txn) -> int | None:
            ids = convs.user_ids(txn, [other])
            return convs.find_direct(txn, user.id, ids[other], True) if other in ids else None

        found = await self.db.run("msg_conv_find_direct", find, readonly=True)
        return None if found is None else str(found)

    def _present_conv(self, conv: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in conv.items() if k != "created_at_ms"}
        out["created_at"] = rfc3339_ms(conv["created_at_ms"])
        return out

    def _publish_conversation(self, conv: dict[str, Any], audience: list[str]) -> None:
        self.bus.publish(events.MESSAGE_CONVERSATION, {"conversation": self._present_conv(conv), "audience": audience})

    async def get_conversation(self, user: User, conv_id: int) -> dict[str, Any]:
        conv = await self.db.run("msg_conv_get", convs.get_for_member, conv_id, user.id, readonly=True)
        return self._present_conv(conv)

    async def list_conversations(self, user: User, after: int, limit: int) -> list[dict[str, Any]]:
        items = await self.db.run("msg_conv_list", convs.list_for_member, user.id, after, limit, readonly=True)
        return [self._present_conv(c) for c in items]

    async def change_members(self, user: User, conv_id: int, body: dict[str, Any]) -> dict[str, Any]:
        add = [address(a, "add[]") for a in body.get("add", [])] if isinstance(body.get("add", []), list) else None
        remove = [address(a, "remove[]") for a in body.get("remove", [])] \
            if isinstance(body.get("remove", []), list) else None
        title = body.get("title")
        if add is None or remove is None or (title is not None and not valid_title(title)):
            raise MessengerError(400, "invalid_request", "add and remove are lists of addresses, title a string"
                                 f" of at most {MAX_TITLE} printable characters")
        found = await self.db.run("msg_user_ids", convs.user_ids, sorted(set(add + remove)), readonly=True)
        unknown = sorted(set(add) - set(found))
        if unknown:
            raise MessengerError(404, "user_not_found", "unknown users: " + ", ".join(unknown))
        now = self.now_ms()

        def change(txn: Txn) -> dict[str, Any]:
            conv, audience = convs.change_members(txn, conv_id, user.id, [found[a] for a in add],
                                                  [found[a] for a in remove if a in found], title, now)
            txn.call_after(self._publish_conversation, conv, audience)
            return conv

        return self._present_conv(await self.db.run("msg_conv_members", change))

    # -- messages ---------------------------------------------------------------------------------
    async def send(self, user: User, body: dict[str, Any], device_id: int | None = None) -> dict[str, Any]:
        """``POST /api/messages`` and the WebSocket ``send`` frame; returns ``{id, conversation, timestamp}``."""
        dev = device_id if device_id is not None else int_id(body.get("device_id", 0), "device_id")
        text, raw_envs = body.get("body"), body.get("envelopes")
        if (text is None) == (raw_envs is None):
            raise MessengerError(400, "invalid_request", "give either body (plaintext) or envelopes (E2E)")
        envelopes = None
        if raw_envs is not None:
            envelopes = self._envelopes(raw_envs)
        elif not isinstance(text, str) or len(text) > messages.MAX_BODY:
            raise MessengerError(400, "invalid_request", f"body must be text of at most {messages.MAX_BODY} characters")
        attachments = self._attachments(body.get("attachments", []))
        now = self.now_ms()
        if "conversation" in body:
            conv_id: int | None = int_id(body["conversation"], "conversation")
            other = None
        elif "to" in body:
            conv_id, other = None, await self.user_id(address(body["to"], "to"))
        else:
            raise MessengerError(400, "invalid_request", "give to (a user) or conversation (an id)")

        def post(txn: Txn) -> dict[str, Any]:
            cid = conv_id
            if cid is None:
                assert other is not None  # "to" set it when there is no conversation id
                cid, _ = convs.find_or_create_direct(txn, user.id, other, envelopes is not None, now)
            message, deliveries = messages.post(txn, user.id, user.address, dev, cid, text, envelopes,
                                                attachments, now)
            txn.call_after(self._publish_message, message, deliveries)  # its id is known after commit
            return message

        # grouped (one commit for the sends arriving meanwhile) in a lane of its own: batches run one
        # at a time, so messages are published in commit order, which is id order
        message = await self.db.run_in_order("messages", "msg_post", post)
        return {"id": message["id"], "conversation": message["conversation"],
                "timestamp": rfc3339_ms(message["timestamp_ms"])}

    def _publish_message(self, message: dict[str, Any], deliveries: list[tuple[str, int, str | None]]) -> None:
        self.bus.publish(events.MESSAGE_CREATED, {"message": present(message), "deliveries": deliveries})

    def _envelopes(self, raw: Any) -> list[messages.Envelope]:
        if not isinstance(raw, list) or len(raw) > MAX_ENVELOPES:
            raise MessengerError(400, "invalid_request", f"envelopes must be a list of at most {MAX_ENVELOPES}")
        out = []
        for env in raw:
            if not isinstance(env, dict):
                raise MessengerError(400, "invalid_envelope", "each envelope is {user, device_id, ciphertext}")
            reg = env.get("registration_id")
            out.append(messages.Envelope(address(env.get("user"), "envelopes[].user"),
                                         int_id(env.get("device_id"), "envelopes[].device_id"),
                                         messages.check_ciphertext(env.get("ciphertext")),
                                         None if reg is None else int_id(reg, "envelopes[].registration_id")))
        return out

    def _attachments(self, raw: Any) -> list[dict[str, Any]]:
        """TauCloud file references (``file_id`` plus optional name/size/content_type), never keys."""
        if not isinstance(raw, list) or len(raw) > MAX_ATTACHMENTS:
            raise MessengerError(400, "invalid_request", f"attachments must be a list of at most {MAX_ATTACHMENTS}")
        out = []
        for item in raw:
            if not isinstance(item, dict) or not isinstance(item.get("file_id"), str) or len(item["file_id"]) > 200:
                raise MessengerError(400, "invalid_attachment",
                                     "each attachment is {file_id, name?, size?, content_type?}")
            ref: dict[str, Any] = {"file_id": item["file_id"]}
            for key, kind in (("name", str), ("content_type", str), ("size", int)):
                if isinstance(item.get(key), kind):
                    ref[key] = item[key] if kind is int else item[key][:255]
            out.append(ref)
        return out

    async def history(self, user: User, conv_id: int | None, since_id: int, since_ms: int, limit: int,
                      device_id: int) -> list[dict[str, Any]]:
        items = await self.db.run("msg_history", messages.history, user.id, conv_id, since_id, since_ms, limit,
                                  device_id, readonly=True)
        return [present(i) for i in items]

    async def pending(self, user: User, device_id: int, after: int, limit: int) -> list[dict[str, Any]]:
        items = await self.db.run("msg_pending", messages.pending, user.id, device_id, after, limit, readonly=True)
        return [present(i) for i in items]

    async def ack(self, user: User, device_id: int, ids: list[int]) -> None:
        now = self.now_ms()

        def ack(txn: Txn) -> None:
            for receipt in messages.ack(txn, user.id, device_id, ids, now):
                txn.call_after(self._publish_receipt, user.address, receipt, now)

        await self.db.run("msg_ack", ack)

    async def mark(self, user: User, kind: str, conv_id: int, ids: list[int]) -> None:
        if kind not in ("delivered", "read"):
            raise MessengerError(400, "invalid_request", "kind is delivered or read")
        now = self.now_ms()

        def mark(txn: Txn) -> None:
            for receipt in messages.mark(txn, user.id, kind, conv_id, ids, now):
                txn.call_after(self._publish_receipt, user.address, receipt, now)

        await self.db.run("msg_receipts", mark)

    def _publish_receipt(self, reader: str, receipt: dict[str, Any], now_ms: int) -> None:
        audience = [receipt["sender"]] + ([reader] if receipt["kind"] == "read" else [])
        self.bus.publish(events.MESSAGE_RECEIPT, {"kind": receipt["kind"], "conversation": receipt["conversation"],
                                             "user": reader, "ids": receipt["ids"], "timestamp": rfc3339_ms(now_ms),
                                             "audience": audience})

    async def typing(self, user: User, conv_id: int, state: str) -> None:
        if state not in ("started", "stopped"):
            raise MessengerError(400, "invalid_request", "state is started or stopped")
        conv = await self.db.run("msg_conv_get", convs.get_for_member, conv_id, user.id, readonly=True)
        self.bus.publish(events.MESSAGE_TYPING, {"conversation": conv["id"], "user": user.address, "state": state,
                                            "audience": [m for m in conv["members"] if m != user.address]})

    # -- presence ---------------------------------------------------------------------------------
    async def set_status(self, user: User, status: Any, rest: bool = False) -> None:
        """``rest``: set over REST, so it holds without a socket (a lease; tau.messenger.presence)."""
        if status not in STATUSES:
            raise MessengerError(400, "invalid_status", "status is one of " + ", ".join(STATUSES))
        if rest:
            await self.presence.rest_status(user.address, status)
        else:
            await self.presence.set_status(user.address, status)

    def api_activity(self, user: User) -> None:
        """A chat API call by ``user``: renews a REST presence lease (never fails the call)."""
        defer.ensureDeferred(self.presence.activity(user.address)).addErrback(
            lambda f: log.failure("presence activity failed", f))

    async def presence_of(self, user: User, wanted: list[str]) -> list[dict[str, Any]]:
        """Presence of users who share a conversation with the caller (others are not disclosed)."""
        names = sorted({address(w, "users") for w in wanted})
        found = await self.db.run("msg_user_ids", convs.user_ids, names, readonly=True)
        visible = await self.db.run("msg_presence_visible", convs.shares_conversation, user.id,
                                    [found[n] for n in names if n in found], readonly=True)
        allowed = [n for n in names if n == user.address or (n in found and found[n] in visible)]
        items = await self.presence.get(allowed)
        for item in items:
            seen = item["last_seen"]
            item["last_seen"] = None if seen is None else rfc3339_ms(seen * 1000)
        return items

    def _presence_changed(self, who: str, status: str, last_seen: float | None) -> None:
        async def publish() -> None:
            uid = (await self.db.run("msg_user_ids", convs.user_ids, [who], readonly=True)).get(who)
            audience = await self.db.run("msg_contacts", convs.contacts, uid, readonly=True) if uid else []
            self.bus.publish(events.PRESENCE_CHANGED, {
                "user": who, "status": status, "audience": audience + [who],
                "last_seen": None if last_seen is None else rfc3339_ms(last_seen * 1000)})

        defer.ensureDeferred(publish()).addErrback(lambda f: log.failure("presence publish failed", f))
