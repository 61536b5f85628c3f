"""TURN credentials (coturn REST-API scheme), signaling frame checks, and the hub's routing."""

from __future__ import annotations

import base64
import hashlib
import hmac
from types import SimpleNamespace

import pytest

from tau.bus import LocalBus
from tau.connect import frames
from tau.connect.hub import SignalHub
from tau.connect.turn import TurnConfig, credentials
from tau.http.websocket import FrameError

SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"


def test_credentials_follow_the_coturn_rest_api_scheme():
    username, credential = credentials("s3cret", "alice@example.test", 1_700_000_000.7, 600)
    assert username == "1700000600:alice@example.test"
    expected = base64.b64encode(hmac.new(b"s3cret", username.encode(), hashlib.sha1).digest()).decode()
    assert credential == expected


def test_turn_object_and_ice_servers():
    turn = TurnConfig(["turn:t.example:3478?transport=udp"], "k", 120).for_user("bob@example.test", 1000)
    assert turn["username"] == "1120:bob@example.test" and turn["ttl"] == 120
    assert TurnConfig.ice_servers(turn) == [{"urls": turn["uris"], "username": turn["username"],
                                             "credential": turn["credential"]}]
    bare = TurnConfig(["stun:s.example"], "", 60).for_user("bob@example.test", 1000)
    assert bare["username"] is None and TurnConfig.ice_servers(bare) == [{"urls": ["stun:s.example"]}]
    assert TurnConfig.ice_servers(TurnConfig([], "k", 60).for_user("x", 0)) == []


@pytest.mark.parametrize("sdp", [None, 5, "", "v=1", "x=0\r\n", SDP.replace("m=", "M="), SDP.replace("o=", "x="),
                                 SDP + "a=\x07\r\n", "v=0\r\n" + "a=b\r\n" * 20000, SDP.replace("t=0 0\r\n", "")])
def test_malformed_sdp_is_refused(sdp):
    with pytest.raises(FrameError) as exc:
        frames.check_sdp(sdp)
    assert exc.value.code == "malformed_sdp"


def test_good_sdp_and_candidates_pass_unchanged():
    assert frames.check_sdp(SDP) is SDP and frames.check_sdp(SDP.replace("\r\n", "\n")) is not None
    cand = {"candidate": "candidate:1 1 udp 2122260223 10.0.0.1 5000 typ host", "sdpMid": "0", "sdpMLineIndex": 0}
    assert frames.check_candidate(cand) is cand and frames.check_candidate(None) is None
    assert frames.check_candidate({"candidate": ""}) == {"candidate": ""}
    for bad in ("x", {"candidate": "typ host"}, {"candidate": 1}, {"candidate": "candidate:1", "sdpMid": 3},
                {"candidate": "candidate:1", "sdpMLineIndex": True}, {"candidate": "candidate:" + "1" * 2000}):
        with pytest.raises(FrameError):
            frames.check_candidate(bad)


class FakeSocket:
    def __init__(self, user: str, call_id: str | None, pid: str | None, conn: str = "c") -> None:
        self.who = SimpleNamespace(address=user)
        self.call_id, self.participant_id, self.conn = call_id, pid, conn
        self.frames: list[dict] = []
        self.detached: list[str] = []

    def send_json(self, frame: dict) -> None:
        self.frames.append(frame)

    def detach(self, call_id: str, reason: str) -> None:
        self.detached.append(reason)
        self.call_id = None


def test_hub_routes_frames_only_inside_their_room():
    bus = LocalBus()
    hub = SignalHub(bus)
    a, b = FakeSocket("alice", "room1", "pa"), FakeSocket("bob", "room1", "pb")
    eve, idle = FakeSocket("eve", "room2", "pe"), FakeSocket("bob", None, None)
    for s in (a, b, eve, idle):
        hub.register(s)
        if s.call_id:
            hub.enter(s, s.call_id)
    bus.publish("signal.frame", {"call_id": "room1", "roster": {"pa": "alice", "pb": "bob"},
                                 "frame": {"type": "participants"}})
    assert hub.in_room("room1", "pb") and not hub.in_room("room1", "pe") and not hub.in_room("room2", "pb")
    assert [f["type"] for f in a.frames] == ["participants"] == [f["type"] for f in b.frames]
    assert eve.frames == [] and idle.frames == []
    bus.publish("signal.frame", {"call_id": "room1", "to": "pb", "frame": {"type": "offer", "from": "pa"}})
    assert b.frames[-1]["type"] == "offer" and a.frames[-1]["type"] == "participants" and eve.frames == []
    bus.publish("signal.frame", {"call_id": "room2", "to": "pb", "frame": {"type": "offer"}})  # wrong room
    assert b.frames[-1]["type"] == "offer" and len(b.frames) == 2
    # a new session of bob replaces this one
    bus.publish("signal.frame", {"call_id": "room1", "replace": {"participant": "pb", "conn": "new"}})
    assert b.detached == ["replaced"]
    # ringing goes to every line of the invitee; an ended call clears the room
    bus.publish("call.updated", {"kind": "created", "audience": ["alice", "bob"], "call": {
        "id": "room3", "status": "ringing", "host": "alice", "title": "t", "mode": "p2p", "scheduled_for": None}})
    assert idle.frames[-1]["type"] == "ringing" and a.frames[-1]["type"] != "ringing"
    bus.publish("call.updated", {"kind": "status", "audience": ["alice", "bob"], "call": {
        "id": "room1", "status": "ended", "host": "alice", "title": "t", "mode": "p2p"}})
    assert a.frames[-1] == {"type": "call_ended", "call_id": "room1"} and a.detached == ["ended"]
    assert idle.frames[-1]["type"] == "call_ended" and not hub.in_room("room1", "pa")
    hub.close()
