"""TauConnect's domain: create and shape calls, join/leave/decline, and the events they cause.

REST (``api.py``) and signaling (``signaling.py``) both call this; it owns every write and every
bus event, published after commit: ``call.updated`` (created, status changes, edits; issue 9's
event list) and ``signal.frame`` (what signaling sockets on any node must deliver: participant
lists, state changes, relayed SDP). The media server is told when people leave and calls end.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tau.auth.accounts import AccountError, normalize_address
from tau.bus import events
from tau.clock import Scheduler
from tau.connect import store
from tau.connect.store import CallError
from tau.connect.turn import TurnConfig

if TYPE_CHECKING:
    from tau.registry import Registry

MAX_TITLE = 200
MAX_INVITEES = 100
#: seconds a dropped participant's empty room waits for a reconnect before the call ends
RECONNECT_GRACE = 20.0
#: ringing notifications are replayed to sockets that connect within this many seconds
RING_REPLAY = 120


@dataclass(frozen=True)
class Identity:
    """Who speaks on a signaling socket or REST call: a local user, or a guest of one call."""

    address: str
    user_id: int | None = None
    guest_hash: str | None = None
    guest_call: str | None = None
    name: str = ""

    @classmethod
    def of_user(cls, user: Any) -> "Identity":
        return cls(user.address, user_id=int(user.id), name=user.display_name or user.address)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def rfc3339(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_time(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise CallError(400, "invalid_request", f"{what} must be an RFC 3339 time")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CallError(400, "invalid_request", f"{what} must be an RFC 3339 time")
    if parsed.tzinfo is None:
        raise CallError(400, "invalid_request", f"{what} needs a time zone offset")
    return int(parsed.timestamp() * 1000)


class NoMedia:
    """The media server seam when there is none (aiortc missing): group calls say so."""

    status = "unavailable"

    def peer_left(self, call_id: str, participant_id: str) -> None:
        pass

    def room_closed(self, call_id: str) -> None:
        pass

    def handle(self, call_id: str, participant_id: str, frame: dict[str, Any]) -> None:
        raise CallError(503, "sfu_unavailable", "the media server is not available on this node")


class Calls:
    def __init__(self, registry: Registry, media: Any = None) -> None:
        self.registry, self.db, self.bus = registry, registry.db, registry.bus
        self.clock: Scheduler = registry.clock
        self.turn = TurnConfig.from_config(registry.config)
        self.media = media or NoMedia()
        self.grace = RECONNECT_GRACE

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    def join_url(self, call_id: str, guest_token: str | None = None) -> str:
        url = f"{self.registry.public_url}/call/{call_id}"
        return url + (f"?guest={guest_token}" if guest_token else "")

    def turn_for(self, who: str) -> dict[str, Any]:
        return self.turn.for_user(who, self.clock.seconds())

    # -- REST -----------------------------------------------------------------------------------
    async def create(self, user: Any, body: dict[str, Any]) -> dict[str, Any]:
        title = self._title(body.get("title", ""))
        scheduled = parse_time(body.get("scheduled_for"), "scheduled_for")
        specs = body.get("participants", [])
        if not isinstance(specs, list) or len(specs) > MAX_INVITEES:
            raise CallError(400, "invalid_request", f"participants must be a list of at most {MAX_INVITEES}")
        invitees, guest_links = await self._invitees(specs, exclude=user.address)
        mode = body.get("mode", "auto")
        if mode not in ("auto", "p2p", "sfu"):
            raise CallError(400, "invalid_request", "mode is auto, p2p or sfu")
        if mode == "auto":  # 1:1 stays peer-to-peer; a group goes through the media server
            mode = "p2p" if len(invitees) <= 1 else "sfu"
        call_id = secrets.token_urlsafe(12)
        host = {"participant_id": _pid(), "user_id": int(user.id), "role": "host"}
        await self.db.run("call_create", store.create_call, call_id, int(user.id), title, mode, scheduled,
                          self.now_ms(), [host, *invitees])
        view = await self.view(call_id, Identity.of_user(user))
        view["guests"] = self._links(call_id, guest_links)
        self._call_event("created", view)
        return view

    async def _invitees(self, specs: list[Any], exclude: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        addresses, guests = [], []
        for spec in specs:
            if isinstance(spec, dict) and isinstance(spec.get("guest"), str) and 0 < len(spec["guest"]) <= 100:
                guests.append(spec["guest"].strip() or "guest")
                continue
            if not isinstance(spec, str):
                raise CallError(400, "invalid_participant", "a participant is an address or {\"guest\": name}")
            try:
                addresses.append(normalize_address(spec))
            except AccountError as exc:
                raise CallError(400, "invalid_participant", exc.message)
        addresses = [a for a in dict.fromkeys(addresses) if a != exclude]

        def resolve(txn: Any) -> tuple[dict[str, int], list[str]]:
            found = store.user_ids(txn, addresses)
            unknown = [a for a in addresses if a not in found and store.local_domain(txn, a.rsplit("@", 1)[1])]
            return found, unknown

        found, unknown = await self.db.run("call_resolve_invitees", resolve, readonly=True)
        if unknown:
            raise CallError(400, "unknown_participant", f"no such user: {unknown[0]}")
        invitees = [{"participant_id": _pid(), "user_id": found[a], "role": "member"} for a in addresses if a in found]
        # an outside address gets a guest link, named after the address (mailed by issue 9's flows)
        links = []
        for name in [*guests, *(a for a in addresses if a not in found)]:
            token = secrets.token_urlsafe(24)
            pid = _pid()
            invitees.append({"participant_id": pid, "guest_name": name, "guest_hash": hash_token(token),
                             "role": "guest"})
            links.append({"name": name, "token": token, "pid": pid})
        return invitees, links

    async def view(self, call_id: str, who: Identity) -> dict[str, Any]:
        """What a participant sees: the call, everyone invited, a join link, fresh TURN credentials."""
        def read(txn: Any) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
            call, me = store.call_for(txn, call_id, who.user_id, who.guest_hash)
            return call, me, store.participants(txn, call_id)

        call, me, people = await self.db.run("call_get", read, readonly=True)
        turn = self.turn_for(who.address if who.user_id is not None else f"guest-{me['id']}")
        return {**self.summary(call, people), "me": me["id"], "join_url": self.join_url(call_id), "turn": turn,
                "ice_servers": TurnConfig.ice_servers(turn), "sfu": self.media.status}

    @staticmethod
    def summary(call: dict[str, Any], people: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        out = {"id": call["id"], "title": call["title"], "status": call["status"], "mode": call["mode"],
               "host": call["host"], "scheduled_for": rfc3339(call["scheduled_for"]),
               "created_at": rfc3339(call["created_at"]), "started_at": rfc3339(call["started_at"]),
               "ended_at": rfc3339(call["ended_at"])}
        if people is not None:
            out["participants"] = [public_participant(p) for p in people]
        return out

    async def history(self, user: Any, limit: int, before: tuple[int, str] | None, status: str | None
                      ) -> list[dict[str, Any]]:
        if status is not None and status not in store.STATUSES:
            raise CallError(400, "invalid_query", "status is ringing, active or ended")
        rows = await self.db.run("call_history", store.history, int(user.id), limit, before, status, readonly=True)
        return [{**self.summary(c, c["participants"]), "_key": (c["created_at"], c["id"])} for c in rows]

    async def patch(self, user: Any, call_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Host: title, schedule, invitees, status. Any participant: ``{"status": "active"}`` alone.
        Status moves forward only (``store.change_status``): ended → anything else is 409."""
        title = self._title(body["title"]) if "title" in body else None
        scheduled = parse_time(body["scheduled_for"], "scheduled_for") if "scheduled_for" in body else ...
        status = body.get("status")
        if status is not None and status not in store.STATUSES:
            raise CallError(400, "invalid_status", "status is ringing, active or ended")
        add, links = await self._invitees(body.get("add_participants") or [], exclude=user.address)
        remove = body.get("remove_participants") or []
        if not isinstance(remove, list) or not all(isinstance(r, str) for r in remove):
            raise CallError(400, "invalid_request", "remove_participants is a list of addresses or participant ids")
        member_may = set(body) <= {"status"} and status in ("active", "ringing")
        now = self.now_ms()

        def write(txn: Any) -> tuple[str | None, list[dict[str, Any]]]:
            call, me = store.call_for(txn, call_id, int(user.id))
            if me["role"] != "host" and not member_may:
                raise CallError(403, "not_host", "only the host changes a call (participants may set it active)")
            if call["status"] == "ended" and set(body) - {"status"}:
                raise CallError(409, "call_ended", "this call has ended")
            changed = status if status is not None and store.change_status(txn, call, status, now) else None
            store.update_call(txn, call_id, now, title, scheduled)
            store.add_invitees(txn, call_id, add)
            ids = store.user_ids(txn, [r for r in remove if "@" in r])
            gone = store.remove_invitees(txn, call_id, list(ids.values()), [r for r in remove if "@" not in r])
            return changed, gone

        changed, gone = await self.db.run("call_patch", write)
        for p in gone:
            self._room_event(call_id, {"type": "removed", "call_id": call_id}, to=p["id"], kick=p["id"])
        view = await self.view(call_id, Identity.of_user(user))
        if links:
            view["guests"] = self._links(call_id, links)
        self._call_event("status" if changed else "updated", view)
        if changed == "ended":
            self.media.room_closed(call_id)
        elif gone:
            await self.broadcast_participants(call_id)
        return view

    def _links(self, call_id: str, links: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"name": g["name"], "participant_id": g["pid"], "join_url": self.join_url(call_id, g["token"])}
                for g in links]

    @staticmethod
    def _title(value: Any) -> str:
        if not isinstance(value, str) or len(value) > MAX_TITLE:
            raise CallError(400, "invalid_request", f"title must be a string of at most {MAX_TITLE} characters")
        return value.strip()

    # -- signaling ------------------------------------------------------------------------------
    async def join(self, who: Identity, call_id: str, conn: str) -> dict[str, Any]:
        if who.guest_call is not None and who.guest_call != call_id:
            raise store.not_found()
        result = await self.db.run("call_join", store.join, call_id, conn, self.now_ms(), who.user_id, who.guest_hash)
        me = result["me"]
        if result["replaced"]:
            # the same participant on a new socket (reconnect, another tab): the old one steps aside
            self.bus.publish(events.SIGNAL_FRAME,
                             {"call_id": call_id, "replace": {"participant": me["id"], "conn": conn}})
        people = await self.broadcast_participants(call_id)
        if result["started"]:
            self._call_event("status", self.summary(result["call"], people))
        turn = self.turn_for(who.address if who.user_id is not None else f"guest-{me['id']}")
        return {"call": result["call"], "me": me, "participants": [public_participant(p) for p in people
                                                                     if p["state"] == "joined"],
                "ice_servers": TurnConfig.ice_servers(turn)}

    async def leave(self, call_id: str, participant_id: str, conn: str | None, explicit: bool) -> None:
        """``explicit``: the client said leave (the room may end now); otherwise its socket dropped,
        and an empty room waits ``grace`` seconds for it to come back before the call ends."""
        now = self.now_ms()

        def write(txn: Any) -> tuple[bool, bool]:
            left = store.leave(txn, call_id, participant_id, conn, now)
            return left, (store.end_if_empty(txn, call_id, now) if left and explicit else False)

        left, ended = await self.db.run("call_leave", write)
        if not left:
            return
        self.media.peer_left(call_id, participant_id)
        await self._after_leave(call_id, ended)
        if not explicit:
            self.clock.callLater(self.grace, self._end_if_still_empty, call_id)

    def _end_if_still_empty(self, call_id: str) -> Any:
        from twisted.internet import defer

        async def check() -> None:
            ended = await self.db.run("call_end_if_empty", store.end_if_empty, call_id, self.now_ms())
            if ended:
                await self._after_leave(call_id, True)

        return defer.ensureDeferred(check())

    async def _after_leave(self, call_id: str, ended: bool) -> None:
        people = await self.broadcast_participants(call_id)
        if ended:
            call = await self.db.run("call_get", store.get_call, call_id, readonly=True)
            assert call is not None  # an ended call is kept, not deleted
            self._call_event("status", self.summary(call, people))
            self.media.room_closed(call_id)

    async def decline(self, who: Identity, call_id: str) -> None:
        call, me, ended = await self.db.run("call_decline", store.decline, call_id, who.user_id, who.guest_hash,
                                            self.now_ms())
        frame = {"type": "declined", "call_id": call_id, "by": me["id"], "user": me["user"]}
        self._room_event(call_id, frame)
        self.bus.publish(events.SIGNAL_FRAME, {"users": [call["host"]], "frame": frame})
        if ended:
            people = await self.db.run("call_people", store.participants, call_id, readonly=True)
            self._call_event("status", self.summary({**call, "status": "ended"}, people))

    async def set_state(self, call_id: str, participant_id: str, changes: dict[str, bool]) -> None:
        await self.db.run("call_state", store.set_state, call_id, participant_id, changes)
        self._room_event(call_id, {"type": "state", "call_id": call_id, "participant": participant_id, **changes})

    async def ringing(self, who: Identity) -> list[dict[str, Any]]:
        """Calls ringing for this user right now (sent to a signaling socket when it connects)."""
        if who.user_id is None:
            return []
        since = self.now_ms() - RING_REPLAY * 1000
        return await self.db.run("call_ringing", store.ringing_for, who.user_id, since, readonly=True)

    async def broadcast_participants(self, call_id: str) -> list[dict[str, Any]]:
        people = await self.db.run("call_people", store.participants, call_id, readonly=True)
        inside = [public_participant(p) for p in people if p["state"] == "joined"]
        frame = {"type": "participants", "call_id": call_id, "participants": inside}
        self.bus.publish(events.SIGNAL_FRAME, {"call_id": call_id, "roster": {p["id"]: p["user"] or "" for p in inside},
                                          "frame": frame})
        return people

    # -- events ---------------------------------------------------------------------------------
    def _room_event(self, call_id: str, frame: dict[str, Any], to: str | None = None, kick: str | None = None) -> None:
        event: dict[str, Any] = {"call_id": call_id, "frame": frame}
        if to is not None:
            event["to"] = to
        if kick is not None:
            event["kick"] = kick
        self.bus.publish(events.SIGNAL_FRAME, event)

    def _call_event(self, kind: str, view: dict[str, Any]) -> None:
        audience = [p["user"] for p in view.get("participants", []) if p.get("user")]
        call = {k: v for k, v in view.items() if k not in ("turn", "ice_servers", "guests", "me", "sfu")}
        self.bus.publish(events.CALL_UPDATED, {"kind": kind, "call": call, "audience": audience})


def public_participant(p: dict[str, Any]) -> dict[str, Any]:
    return {"id": p["id"], "user": p["user"], "name": p["name"], "role": p["role"], "state": p["state"],
            "audio_muted": p["audio_muted"], "video_muted": p["video_muted"], "hand_raised": p["hand_raised"],
            # changes on every join: peers see a reconnect as a new session to negotiate with
            "session": str(p["joined_at"]) if p["state"] == "joined" and p["joined_at"] else None}


def _pid() -> str:
    return "p" + secrets.token_urlsafe(9)


async def guest_identity(calls: Calls, token: str) -> Identity | None:
    """The guest holding a join-link token, or None (the socket then closes with 4401)."""
    if not isinstance(token, str) or not 16 <= len(token) <= 128:
        return None
    token_hash = hash_token(token)

    def read(txn: Any) -> tuple[str, dict[str, Any]] | None:
        call_id = store.guest_call(txn, token_hash)
        me = store.member(txn, call_id, guest_hash=token_hash) if call_id else None
        return (call_id, me) if call_id and me else None

    found = await calls.db.run("call_guest", read, readonly=True)
    if found is None:
        return None
    call_id, me = found
    return Identity(f"guest:{me['id']}", guest_hash=token_hash, guest_call=call_id, name=me["name"])
