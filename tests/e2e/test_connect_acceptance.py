"""Issue 8 acceptance against a real ``twistd -n tau`` (SQLite and PostgreSQL), with real clients:
aiortc peers over ``/ws/signal`` (``tau.client.ws.Socket``), the SFU worker process, and a real
coturn (``turnserver`` from Debian) for TURN credentials, allocated with aioice's TURN client."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import time

import pytest

from tests.support.daemon import TauDaemon, free_port
from tests.support.databases import daemon_database_url, engines

pytest.importorskip("aiortc", reason="aiortc (the connect extra) is needed for media tests")
from tau.client.call import CallClient  # noqa: E402
from tau.client.ws import Closed, Socket  # noqa: E402

pytestmark = pytest.mark.e2e
USERS = ("alice", "bob", "carol", "mallory")
TURN_SECRET = "turn-shared-secret-for-tests"
TURN_PORT = free_port()


# -- TURN against a real coturn ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def coturn(tmp_path_factory):
    """A coturn for the whole module (None without the binary): the daemon hands out its URI, so
    every media test also gathers relay candidates from a TURN server that answers."""
    binary = shutil.which("turnserver")
    if binary is None:
        yield None
        return
    folder = tmp_path_factory.mktemp("coturn")
    low = free_port()
    proc = subprocess.Popen(
        [binary, "-n", "--listening-ip=127.0.0.1", f"--listening-port={TURN_PORT}", "--relay-ip=127.0.0.1",
         f"--min-port={max(low, 20000)}", f"--max-port={max(low, 20000) + 50}", "--use-auth-secret",
         f"--static-auth-secret={TURN_SECRET}", "--realm=example.test", "--no-tls", "--no-dtls", "--no-cli",
         "--allow-loopback-peers", f"--userdb={folder / 'turndb'}", f"--pidfile={folder / 'turn.pid'}",
         "--log-file=stdout", "--simple-log", "--no-multicast-peers"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", TURN_PORT))
            except OSError:
                break  # bound by coturn
        time.sleep(0.1)
    yield proc
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module", params=engines())
def daemon(request, tmp_path_factory, coturn):
    folder = tmp_path_factory.mktemp(f"connect-{request.param}")
    url = daemon_database_url(request)
    env = {"TAU_TURN_SHARED_SECRET": TURN_SECRET, "TAU_TURN_TTL": "600"}
    if coturn is not None:
        env["TAU_TURN_URIS"] = f"turn:127.0.0.1:{TURN_PORT}?transport=udp"
    d = TauDaemon(folder, database_url=url, listeners=("http",), env=env).init()
    for user in USERS:
        d.add_user(f"{user}@example.test")
    d.start()
    d.tokens = {u: d.token(f"{u}@example.test") for u in USERS}
    yield d
    d.stop()


def run(coro, timeout: float = 60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def api(d: TauDaemon, who: str, method: str, path: str, body=None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    status, _, raw = d.http(method, path, data, {"Content-Type": "application/json"} if data else {},
                            token=d.tokens[who])
    return status, json.loads(raw) if raw else {}


def new_call(d: TauDaemon, host: str, *others: str, **extra) -> dict:
    status, call = api(d, host, "POST", "/api/calls", {"title": "standup", **extra,
                                                      "participants": [f"{o}@example.test" for o in others]})
    assert status == 201, call
    return call


async def client(d: TauDaemon, who: str, **kw) -> CallClient:
    return await CallClient(d.url, d.tokens[who], **kw).connect()


def test_two_aiortc_peers_exchange_video_and_a_data_channel_message(daemon):
    call = new_call(daemon, "alice", "bob")
    assert call["status"] == "ringing" and call["mode"] == "p2p" and call["join_url"].endswith(f"/call/{call['id']}")

    async def scenario():
        alice, bob = await client(daemon, "alice"), await client(daemon, "bob")
        ring = await bob.wait_event("ringing")  # the callee's line rings as soon as it connects
        assert ring["call_id"] == call["id"] and ring["from"] == "alice@example.test"
        first = await alice.join(call["id"])
        assert first["status"] == "ringing" and [p["user"] for p in first["participants"]] == ["alice@example.test"]
        await bob.accept(call["id"])
        accepted = await alice.wait_event("accepted")
        assert accepted["user"] == "bob@example.test"
        await alice.wait_frames([bob.me], 30)
        await bob.wait_frames([alice.me], 30)
        assert alice.frames[bob.me] >= 30 and bob.frames[alice.me] >= 30
        for _ in range(200):
            if all(c.channels.get(o.me) and c.channels[o.me].readyState == "open"
                   for c, o in ((alice, bob), (bob, alice))):
                break
            await asyncio.sleep(0.05)
        alice.channels[bob.me].send("hello over the data channel")
        bob.channels[alice.me].send("and back")
        for _ in range(100):
            if alice.messages and bob.messages:
                break
            await asyncio.sleep(0.05)
        assert bob.messages == ["hello over the data channel"] and alice.messages == ["and back"]
        status, detail = api(daemon, "alice", "GET", f"/api/calls/{call['id']}")
        assert detail["status"] == "active" and {p["state"] for p in detail["participants"]} == {"joined"}
        # mute and hand-raise reach the other side and the participant list
        bob.send({"type": "mute", "call_id": call["id"], "audio": True})
        bob.send({"type": "hand", "call_id": call["id"], "raised": True})
        state = await alice.wait_event("state")
        assert state["participant"] == bob.me and state["audio_muted"] is True
        assert (await alice.wait_event("state"))["hand_raised"] is True
        await bob.close()
        await asyncio.sleep(0.3)
        await alice.close()

    run(scenario())


def test_three_aiortc_clients_through_the_sfu_each_receive_the_other_two(daemon):
    call = new_call(daemon, "alice", "bob", "carol")
    assert call["mode"] == "sfu" and call["sfu"] == "ok"

    async def scenario():
        clients = [await client(daemon, u) for u in ("alice", "bob", "carol")]
        for c in clients:
            await c.join(call["id"])
        for c in clients:
            await c.wait_frames([o.me for o in clients if o is not c], 20, timeout=30)
        for c in clients:  # media came from the SFU, never peer to peer
            assert not c.peers and set(c.subs) == {o.me for o in clients if o is not c}
        for c in clients:
            await c.close()

    run(scenario())


def test_a_user_not_invited_cannot_join_or_read_the_room(daemon):
    call = new_call(daemon, "alice", "bob")

    async def scenario():
        alice, bob, mallory = [await client(daemon, u) for u in ("alice", "bob", "mallory")]
        with pytest.raises(RuntimeError, match="call_not_found"):
            await mallory.join(call["id"])
        mallory.events.clear()
        await alice.join(call["id"])
        await bob.join(call["id"])
        await alice.wait_frames([bob.me], 5)
        # mallory addresses the room anyway: refused, and she saw none of its signaling
        mallory.send({"type": "offer", "call_id": call["id"], "to": alice.me, "sdp": "v=0\r\no=- 1 1 IN IP4 0\r\n"
                      "s=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"})
        assert (await mallory.wait_event("error"))["error"] == "not_in_call"
        seen = [e.get("type") for e in mallory.events]
        assert not {"participants", "offer", "answer", "ice", "state", "ringing"} & set(seen), seen
        assert api(daemon, "mallory", "GET", f"/api/calls/{call['id']}")[0] == 404
        assert api(daemon, "mallory", "PATCH", f"/api/calls/{call['id']}", {"status": "ended"})[0] == 404
        for c in (alice, bob, mallory):
            await c.close()

    run(scenario())


def test_an_ended_call_refuses_joins(daemon):
    call = new_call(daemon, "alice", "bob")

    async def scenario():
        alice, bob = await client(daemon, "alice"), await client(daemon, "bob")
        await alice.join(call["id"])
        assert api(daemon, "bob", "PATCH", f"/api/calls/{call['id']}", {"status": "ended"})[0] == 403
        status, ended = api(daemon, "alice", "PATCH", f"/api/calls/{call['id']}", {"status": "ended"})
        assert status == 200 and ended["status"] == "ended" and ended["ended_at"]
        assert (await alice.wait_event("call_ended"))["call_id"] == call["id"]
        for who in (alice, bob):
            with pytest.raises(RuntimeError, match="call_ended"):
                await who.join(call["id"])
        items = api(daemon, "bob", "GET", "/api/calls?status=ended")[1]["items"]
        assert call["id"] in [c["id"] for c in items]
        await alice.close()
        await bob.close()

    run(scenario())


def test_declining_a_one_to_one_call_ends_it_and_tells_the_caller(daemon):
    call = new_call(daemon, "alice", "bob")

    async def scenario():
        alice, bob = await client(daemon, "alice"), await client(daemon, "bob")
        await alice.join(call["id"])
        await bob.wait_event("ringing")
        bob.send({"type": "decline", "call_id": call["id"]})
        assert (await alice.wait_event("declined"))["user"] == "bob@example.test"
        await alice.wait_event("call_ended")
        await alice.close()
        await bob.close()

    run(scenario())
    assert api(daemon, "alice", "GET", f"/api/calls/{call['id']}")[1]["status"] == "ended"


def test_reconnect_keeps_the_participant_id_and_replaces_the_old_session(daemon):
    call = new_call(daemon, "alice", "bob")

    async def scenario():
        alice, bob = await client(daemon, "alice"), await client(daemon, "bob")
        await alice.join(call["id"])
        first = (await bob.join(call["id"]))["participant_id"]
        bob.sock.abort()  # the network drops: no leave
        again = await client(daemon, "bob")
        joined = await again.join(call["id"])
        assert joined["participant_id"] == first and joined["status"] == "active"
        # a second window takes over: the earlier one is told, the id stays the same
        third = await client(daemon, "bob")
        assert (await third.join(call["id"]))["participant_id"] == first
        assert (await again.wait_event("left"))["reason"] == "replaced"
        await alice.wait_frames([first], 5)
        for c in (alice, again, third):
            await c.close()

    run(scenario())


def test_guest_link_joins_without_an_account(daemon):
    status, call = api(daemon, "alice", "POST", "/api/calls",
                       {"title": "with a guest", "participants": [{"guest": "Visitor"}, "someone@elsewhere.example"]})
    assert status == 201 and [g["name"] for g in call["guests"]] == ["Visitor", "someone@elsewhere.example"]
    token = call["guests"][0]["join_url"].split("guest=", 1)[1]

    async def scenario():
        guest = await CallClient(daemon.url, guest=token).connect()
        joined = await guest.join(call["id"])
        assert joined["participant_id"] == call["guests"][0]["participant_id"]
        await guest.close()
        with pytest.raises(Closed) as refused:
            sock = await Socket.connect(daemon.url, "/ws/signal", None, {"guest": "x" * 32})
            await sock.recv(5)
        assert refused.value.code == 4401

    run(scenario())


def test_turn_credentials_allocate_a_relay_on_coturn(daemon, coturn):
    if coturn is None:
        pytest.skip("coturn is not installed (apt-get install -y coturn)")
    call = new_call(daemon, "alice", "bob")
    turn = call["turn"]
    assert turn["uris"] == [f"turn:127.0.0.1:{TURN_PORT}?transport=udp"] and turn["ttl"] == 600
    expiry, user = turn["username"].split(":", 1)
    assert user == "alice@example.test" and 0 < int(expiry) - time.time() <= 600

    async def scenario():
        from aioice.stun import TransactionFailed
        from aioice.turn import create_turn_endpoint

        class Receiver(asyncio.DatagramProtocol):
            def __init__(self) -> None:
                self.got: asyncio.Future = asyncio.get_running_loop().create_future()

            def datagram_received(self, data, addr) -> None:
                if not self.got.done():
                    self.got.set_result((data, addr))

        loop = asyncio.get_running_loop()
        peer_transport, peer = await loop.create_datagram_endpoint(Receiver, local_addr=("127.0.0.1", 0))
        relay, _ = await create_turn_endpoint(asyncio.DatagramProtocol, ("127.0.0.1", TURN_PORT),
                                              turn["username"], turn["credential"], lifetime=60)
        relayed = relay.get_extra_info("sockname")
        assert relayed[0] == "127.0.0.1" and relayed[1] != TURN_PORT
        relay.sendto(b"through the relay", peer_transport.get_extra_info("sockname"))
        data, source = await asyncio.wait_for(peer.got, 10)
        assert data == b"through the relay" and source[1] == relayed[1]
        relay.close()
        # a forged credential is refused by coturn
        with pytest.raises(TransactionFailed):  # coturn's 401
            bad, _ = await create_turn_endpoint(asyncio.DatagramProtocol, ("127.0.0.1", TURN_PORT),
                                                turn["username"], "AAAA" + turn["credential"][4:], lifetime=60)
            bad.close()
        peer_transport.close()

    run(scenario(), 30)
