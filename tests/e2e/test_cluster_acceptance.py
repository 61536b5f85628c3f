"""Issue 9 acceptance: three ``twistd -n tau`` nodes on one PostgreSQL, one Redis (a private
``redis-server``, restartable) and one S3 endpoint (moto) behave as one.

Clients sit on different nodes for each check: IMAP IDLE on A sees SMTP on B; a chat message
posted on A reaches a socket on B; presence and signaling frames cross nodes; the mail flows run
with the caller and the people they reach on different nodes; node C is SIGKILLed mid-run and
nothing acknowledged is lost (queued mail reaches the remote MX exactly once); Redis restarts and
cross-node delivery comes back.
"""

from __future__ import annotations

import asyncio
import email.message
import imaplib
import json
import smtplib
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tau.client import Client
from tau.client.ws import Socket
from tests.support.cluster import Cluster, MotoServer, RedisServer
from tests.support.daemon import TauDaemon, tool
from tests.support.databases import PostgresDatabase, postgres_available

pytestmark = pytest.mark.e2e
PASSWORD = "secret-Pa55"
USERS = ("alice@example.test", "bob@example.test", "carol@example.test")
SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
       "c=IN IP4 0.0.0.0\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not postgres_available() or not RedisServer.available() or MotoServer.binary() is None:
        pytest.skip("needs PostgreSQL, redis-server and moto_server")
    from tests.support.outbound import RemotePeer

    folder = tmp_path_factory.mktemp("cluster")
    pg = PostgresDatabase("tau_cluster")
    redis, moto = RedisServer().start(), MotoServer().start()
    peer = RemotePeer(folder, {"remote.test": [["MX", 10, "mx.remote.test"]],
                               "mx.remote.test": [["A", "127.0.0.1"]]}).start()
    env = {"TAU_REDIS_URL": redis.url(2), **moto.env(),
           "TAU_OUTBOUND_RESOLVER": f"127.0.0.1:{peer.dns_port}", "TAU_OUTBOUND_PORT": str(peer.smtp_port),
           "TAU_OUTBOUND_POLL_INTERVAL": "1", "TAU_OUTBOUND_RETRY_BASE": "1", "TAU_OUTBOUND_LEASE": "60"}
    cluster = Cluster(folder, 3, pg.url, env).init(USERS, PASSWORD).start()
    try:
        tokens = {u.split("@")[0]: cluster[0].token(u, PASSWORD) for u in USERS}
        yield {"cluster": cluster, "redis": redis, "peer": peer, "pg": pg, "tokens": tokens}
    finally:
        cluster.stop()
        peer.stop()
        moto.stop()
        redis.stop()
        pg.drop()


def api(node: TauDaemon, token: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    status, _, raw = node.http(method, path, data, {"Content-Type": "application/json"} if data else {}, token=token)
    return status, (json.loads(raw) if raw and raw[:1] in b"{[" else raw)


def run(coro: Any, timeout: float = 60) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def smtp_deliver(node: TauDaemon, rcpts: list[str], subject: str, attachment: bytes | None = None) -> None:
    msg = email.message.EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "alice@example.test", ", ".join(rcpts), subject
    msg.set_content(f"body of {subject}")
    if attachment is not None:
        msg.add_attachment(attachment, maintype="application", subtype="octet-stream", filename="report.bin")
    with smtplib.SMTP("127.0.0.1", node.ports["smtp"], timeout=10) as s:
        s.send_message(msg)


def find_email(node: TauDaemon, token: str, subject: str) -> dict[str, Any]:
    for _ in range(50):
        status, page = api(node, token, "GET", f"/api/emails?q=subject:{subject}")
        if status == 200 and page["items"]:
            return page["items"][0]
        time.sleep(0.1)
    raise AssertionError(f"no email {subject}")


def test_migrations_run_once_when_nodes_start_together(world: dict[str, Any]) -> None:
    fresh = PostgresDatabase("tau_cluster_migrate")
    try:
        nodes = world["cluster"].nodes
        procs = [subprocess.Popen([tool("tau"), "migrate", "--config", str(n.config)],
                                  env={**n.env, "TAU_DATABASE_URL": fresh.url}, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT) for n in nodes]
        outs = [p.communicate(timeout=60)[0].decode() for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], outs
        import psycopg2

        with psycopg2.connect(fresh.url) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*), count(DISTINCT version) FROM schema_version")
            total, distinct = cur.fetchone()
        assert total == distinct and total > 0
    finally:
        fresh.drop()


def test_imap_idle_on_one_node_sees_mail_delivered_by_smtp_on_another(world: dict[str, Any]) -> None:
    a, b = world["cluster"][0], world["cluster"][1]
    imap = imaplib.IMAP4("127.0.0.1", a.ports["imap"])
    imap.login("bob@example.test", PASSWORD)
    imap.select("INBOX")
    tag = imap._new_tag().decode()
    imap.send(f"{tag} IDLE\r\n".encode())
    assert imap.readline().startswith(b"+")
    smtp_deliver(b, ["bob@example.test"], "idle-cross-node")
    imap.sock.settimeout(10)
    assert imap.readline().endswith(b"EXISTS\r\n")
    imap.send(b"DONE\r\n")
    imap.logout()


def test_chat_messages_and_presence_cross_nodes(world: dict[str, Any]) -> None:
    a, b, c = world["cluster"].nodes

    async def scenario() -> None:
        alice = await Client.login(a.url, "alice@example.test", PASSWORD)
        bob = await Client.login(b.url, "bob@example.test", PASSWORD)
        await alice.connect()
        await bob.connect()
        sent = await alice.send_plain("hello from node A", to="bob@example.test")
        got = await bob.next_message()
        assert got.text == "hello from node A" and got.id == sent["id"]
        await bob.set_presence("away")
        frame = await alice.next_event("presence")
        while frame["user"] != "bob@example.test" or frame["status"] != "away":
            frame = await alice.next_event("presence")
        carol = await Client.login(c.url, "alice@example.test", PASSWORD)
        assert (await carol.presence(["bob@example.test"]))[0]["status"] == "away"
        await alice.disconnect()
        await bob.disconnect()

    run(scenario())


def test_signaling_frames_cross_nodes(world: dict[str, Any]) -> None:
    a, b, _ = world["cluster"].nodes
    tok = world["tokens"]
    status, call = api(a, tok["alice"], "POST", "/api/calls", {"title": "x", "participants": ["bob@example.test"]})
    assert status == 201, call

    async def scenario() -> None:
        bob = await Socket.connect(b.url, "/ws/signal", tok["bob"])
        alice = await Socket.connect(a.url, "/ws/signal", tok["alice"])
        assert (await bob.recv_type("ringing"))["call_id"] == call["id"]
        alice.send({"type": "join", "call_id": call["id"]})
        mine = (await alice.recv_type("joined"))["participant_id"]
        bob.send({"type": "join", "call_id": call["id"]})
        theirs = (await bob.recv_type("joined"))["participant_id"]
        while len((await alice.recv_type("participants"))["participants"]) < 2:
            pass
        alice.send({"type": "offer", "call_id": call["id"], "to": theirs, "sdp": SDP})
        offer = await bob.recv_type("offer")
        assert "error" not in offer, offer
        assert offer["from"] == mine and offer["sdp"] == SDP
        await alice.close()
        await bob.close()

    run(scenario())


def test_rest_presence_and_user_addressed_signaling_cross_nodes(world: dict[str, Any]) -> None:
    """Issue 20: a status PUT over REST on B (no socket anywhere) is what C answers; an offer sent
    on A to a user's address reaches that user's socket on B."""
    a, b, c = world["cluster"].nodes
    tok = world["tokens"]
    assert api(a, tok["carol"], "POST", "/api/messages", {"to": "bob@example.test", "body": "hi"})[0] == 201
    assert api(b, tok["bob"], "PUT", "/api/presence", {"status": "busy"})[0] == 200
    status, seen = api(c, tok["carol"], "GET", "/api/presence?users=bob@example.test")
    assert status == 200 and seen["items"][0]["status"] == "busy" and seen["items"][0]["last_seen"]
    status, call = api(a, tok["alice"], "POST", "/api/calls", {"title": "y", "participants": ["bob@example.test"]})
    assert status == 201, call

    async def scenario() -> None:
        bob = await Socket.connect(b.url, "/ws/signal", tok["bob"])
        alice = await Socket.connect(a.url, "/ws/signal", tok["alice"])
        for sock in (alice, bob):
            sock.send({"type": "join", "call_id": call["id"]})
            await sock.recv_type("joined")
        while len((await alice.recv_type("participants"))["participants"]) < 2:
            pass
        alice.send({"type": "offer", "call_id": call["id"], "to": "bob@example.test", "sdp": SDP})
        offer = await bob.recv_type("offer")
        assert offer["from_user"] == "alice@example.test" and offer["sdp"] == SDP
        await alice.close()
        await bob.close()

    run(scenario())


def test_mail_flows_with_clients_on_different_nodes(world: dict[str, Any]) -> None:
    a, b, c = world["cluster"].nodes
    tok = world["tokens"]
    blob = bytes(range(256)) * 40
    smtp_deliver(c, ["bob@example.test", "carol@example.test"], "flows-quarterly", blob)
    item = find_email(b, tok["bob"], "flows-quarterly")

    async def scenario() -> None:
        carol = await Client.login(a.url, "carol@example.test", PASSWORD)
        await carol.connect()
        # Mail → chat: bob on B, carol's socket on A gets the conversation's first message
        status, chat = await asyncio.to_thread(api, b, tok["bob"], "POST", f"/api/emails/{item['id']}/chat", {})
        assert status == 201, chat
        assert set(chat["members"]) == {"alice@example.test", "carol@example.test"}
        got = await carol.next_message()
        assert "flows-quarterly" in (got.text or "")
        # Mail → call: carol's /ws/signal on A rings; everybody on the mail gets the link by mail
        sig = await Socket.connect(a.url, "/ws/signal", tok["carol"])
        status, call = await asyncio.to_thread(api, b, tok["bob"], "POST", f"/api/emails/{item['id']}/call", {})
        assert status == 201, call
        assert (await sig.recv_type("ringing"))["call_id"] == call["call"]["id"]
        await sig.close()
        # Chat → call: carol's call.start on A rings bob's /ws/signal on B
        bob_sig = await Socket.connect(b.url, "/ws/signal", tok["bob"])
        await bob_sig.recv_type("hello")
        carol.socket.send({"type": "call.start", "conversation": chat["conversation"]["id"], "ref": "c1"})
        ring = await bob_sig.recv_type("ringing")
        assert ring["from"] == "carol@example.test"
        link = await carol.next_message()
        assert ring["call_id"] in (link.text or "")
        await bob_sig.close()
        await carol.disconnect()
        return call

    call = run(scenario())
    link_mail = find_email(c, tok["carol"], "Call")
    assert link_mail["subject"].startswith("Call:")
    status, full = api(a, tok["carol"], "GET", f"/api/emails/{link_mail['id']}")
    assert call["call"]["join_url"] in full["text"]
    # Mail → cloud: saved on node B, listed and downloaded from node C (one S3 bucket)
    status, detail = api(b, tok["bob"], "GET", f"/api/emails/{item['id']}")
    part = detail["attachments"][0]["part"]
    status, saved = api(b, tok["bob"], "POST", f"/api/emails/{item['id']}/attachments/{part}/save")
    assert status == 201 and saved["size"] == len(blob), saved
    status, _, body = c.http("GET", f"/api/files/{saved['id']}", token=tok["bob"])
    assert status == 200 and body == blob
    # Mail → event: created on A, listed from C
    status, event = api(a, tok["bob"], "POST", f"/api/emails/{item['id']}/event",
                        {"start": "2030-01-02T10:00:00Z", "end": "2030-01-02T11:00:00Z", "conference": True})
    assert status == 201 and event["conference"].startswith("http"), event
    status, page = api(c, tok["bob"], "GET", "/api/events?from=2030-01-02T00:00:00Z&to=2030-01-03T00:00:00Z")
    assert status == 200 and [e["summary"] for e in page["items"]] == ["flows-quarterly"]
    # Event → call: conference: true on POST /api/events gives the event a room (CONFERENCE)
    status, meeting = api(c, tok["alice"], "POST", "/api/events",
                          {"summary": "sync", "start": "2030-01-03T10:00:00Z", "end": "2030-01-03T11:00:00Z",
                           "conference": True})
    assert status == 201, meeting
    status, _, ics = a.http("GET", meeting["url"], token=tok["alice"])
    assert status == 200 and b"CONFERENCE" in ics and b"/call/" in ics.replace(b"\r\n ", b"")
    # someone else's message is not found
    assert api(a, tok["alice"], "POST", f"/api/emails/{item['id']}/chat", {})[0] == 404


def test_killing_a_node_loses_nothing_acknowledged(world: dict[str, Any]) -> None:
    cluster = world["cluster"]
    a, b, c = cluster.nodes
    tok = world["tokens"]
    peer = world["peer"]

    async def scenario() -> list[str]:
        bob = await Client.login(b.url, "bob@example.test", PASSWORD)
        await bob.connect()
        acked: list[str] = []
        for n in range(30):
            node = (a, c)[n % 2]
            if n == 15:
                # queued outbound mail on both nodes, then C dies without any shutdown
                for m in range(10):
                    status, _ = await asyncio.to_thread(api, (a, c)[m % 2], tok["alice"], "POST", "/api/emails",
                                                        {"to": ["someone@remote.test"], "subject": f"kill-{m}",
                                                         "text": "x"})
                    assert status == 202
                cluster.kill(c)
            if node is c and c.proc is not None and c.proc.poll() is not None:
                node = a  # the load balancer takes C out of rotation
            status, answer = await asyncio.to_thread(api, node, tok["alice"], "POST", "/api/messages",
                                                     {"to": "bob@example.test", "body": f"m{n}"})
            assert status == 201, answer
            acked.append(answer["id"])
        received = []
        while len(received) < len(acked):
            received.append((await bob.next_message(15)).id)
        await bob.disconnect()
        assert sorted(received) == sorted(acked)
        return acked

    run(scenario(), 120)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        subjects = [json.loads(json.dumps(m[1].decode(errors="replace"))) for m in peer.messages()]
        if sum(1 for s in subjects if "Subject: kill-" in s) >= 10:
            break
        time.sleep(0.5)
    time.sleep(2)  # a duplicate would arrive now
    found = [m for _, m in peer.messages() if b"Subject: kill-" in m]
    names = sorted(m.split(b"Subject: ")[1].split(b"\r\n")[0].decode() for m in found)
    assert names == sorted(f"kill-{m}" for m in range(10))  # each once


def test_redis_restart_degrades_then_recovers(world: dict[str, Any]) -> None:
    cluster, redis = world["cluster"], world["redis"]
    a, b = cluster[0], cluster[1]
    redis.stop()
    time.sleep(0.5)
    status, _, raw = a.http("GET", "/api/health")
    health = json.loads(raw)
    assert status == 200 and health["services"]["bus"] == "degraded"
    redis.start()
    for _ in range(100):
        if json.loads(a.http("GET", "/api/health")[2])["services"]["bus"] == "ok" and \
                json.loads(b.http("GET", "/api/health")[2])["services"]["bus"] == "ok":
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the bus did not reconnect")
    test_imap_idle_on_one_node_sees_mail_delivered_by_smtp_on_another(world)
