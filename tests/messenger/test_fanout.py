"""The hub's routing and the socket's replay: live messages held back and deduplicated during catch-up."""

from __future__ import annotations

from types import SimpleNamespace

from tau.bus import LocalBus
from tau.messenger import ws
from tau.messenger.hub import Hub
from tau.messenger.ws import MessagesSocket
from tests.support.harness import resolve


class FakeSocket:
    def __init__(self, user: str, device: int) -> None:
        self.user = SimpleNamespace(address=user)
        self.device_id, self.conn_id = device, f"{user}/{device}"
        self.frames: list[dict] = []

    def push_message(self, frame: dict) -> None:
        self.frames.append(frame)

    send_json = push_message


def test_hub_routes_by_device_and_audience():
    bus = LocalBus()
    hub = Hub(bus)
    b1, b2, b2_tab, carol = (FakeSocket("bob", 1), FakeSocket("bob", 2), FakeSocket("bob", 2), FakeSocket("carol", 1))
    for s in (b1, b2, b2_tab, carol):
        hub.register(s)
    message = {"id": "7", "conversation": "1", "from": "alice", "from_device": 1, "encrypted": True}
    bus.publish("message.created", {"message": message, "deliveries": [["bob", 1, "E1"], ["bob", 2, "E2"]]})
    assert [f["envelope"] for f in b1.frames] == ["E1"]
    assert [f["envelope"] for f in b2.frames] == ["E2"] == [f["envelope"] for f in b2_tab.frames]
    assert carol.frames == []
    bus.publish("presence.changed", {"user": "alice", "status": "online", "last_seen": None, "audience": ["carol"]})
    assert carol.frames == [{"type": "presence", "user": "alice", "status": "online", "last_seen": None}]
    bus.publish("keys.low", {"user": "bob", "device_id": 2, "remaining": 3})
    assert b2.frames[-1]["type"] == "prekeys_low" and b1.frames[-1]["type"] == "message"
    hub.unregister(b2)
    hub.unregister(b2_tab)
    assert sorted(hub.live()) == [("bob", "bob/1"), ("carol", "carol/1")] and hub.count == 2
    hub.close()
    bus.publish("message.created", {"message": message, "deliveries": [["bob", 1, "E1"]]})
    assert len(b1.frames) == 1


def _socket(hub: Hub, pages: list[list[dict]], on_page=None) -> tuple[MessagesSocket, list[dict]]:
    async def pending(user, device, after, limit):
        page = pages.pop(0) if pages else []
        if on_page:
            on_page(after)
        return page

    async def nothing(*args):
        return None

    messenger = SimpleNamespace(pending=pending, prekeys_left=nothing,
                                presence=SimpleNamespace(connected=nothing, disconnected=nothing))
    sock = MessagesSocket.__new__(MessagesSocket)
    sock.factory = SimpleNamespace(messenger=messenger, hub=hub)
    sock.user = SimpleNamespace(address="bob", id=2)
    sock.device_id, sock._open = 1, True
    out: list[dict] = []
    sock.send_json = out.append
    return sock, out


def test_live_messages_during_replay_are_held_and_deduplicated():
    bus = LocalBus()
    hub = Hub(bus)

    def live(ids):
        for i in ids:
            bus.publish("message.created", {"message": {"id": i}, "deliveries": [["bob", 1, "E" + i]]})

    sock, out = _socket(hub, [[{"id": "1"}, {"id": "2"}, {"id": "3"}]], on_page=lambda after: live(["3", "5"]))
    resolve(sock.opened())
    assert [f.get("id") or f["type"] for f in out] == ["hello", "1", "2", "3", "5", "synced"]
    assert out[-1] == {"type": "synced", "replayed": 3}
    live(["6"])  # after the replay: straight through
    assert out[-1]["id"] == "6"


def test_replay_pauses_when_the_window_is_full(monkeypatch):
    monkeypatch.setattr(ws, "PAGE", 2)
    monkeypatch.setattr(ws, "WINDOW", 4)
    hub = Hub(LocalBus())
    pages = [[{"id": "1"}, {"id": "2"}], [{"id": "3"}, {"id": "4"}], [{"id": "5"}]]
    sock, out = _socket(hub, pages)
    d = sock.opened()
    from twisted.internet import defer

    d = defer.ensureDeferred(d)
    assert [f.get("id") for f in out[1:]] == ["1", "2", "3", "4"] and not d.called  # waiting for acks

    async def ack(ids):
        return None

    sock.factory.messenger.ack = lambda user, device, ids: ack(ids)
    resolve(sock.frame_ack({"ids": ["1", "2", "3"]}))
    assert d.called and [f.get("id") or f["type"] for f in out[5:]] == ["5", "synced"]
