"""Issue 20: messages sent concurrently from many sockets into several conversations reach a
WebSocket receiver and a REST reader exactly once and in order per conversation, on SQLite and
PostgreSQL, through a real ``twistd -n tau``.

Sends are grouped (several share one commit) and on PostgreSQL several transactions write at once;
the order a reader sees is the server's id order, and a reader who pages by ``since`` (the last id
it has) or reconnects its socket while sends are committing must never skip an id that commits
after a larger one it has already seen.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from tau.client import Rest, Socket
from tests.support.daemon import TauDaemon
from tests.support.databases import daemon_database_url, engines

pytestmark = pytest.mark.e2e
PASSWORD = "secret-Pa55"
SENDERS = ("alice", "bob", "carol", "dave")
SOCKETS_PER_SENDER = 2
PER_SOCKET = 30
CONVERSATIONS = 3
TOTAL = len(SENDERS) * SOCKETS_PER_SENDER * PER_SOCKET


@pytest.fixture(scope="module", params=engines())
def daemon(request, tmp_path_factory):
    d = TauDaemon(tmp_path_factory.mktemp(f"ordering-{request.param}"),
                  database_url=daemon_database_url(request), listeners=("http",),
                  env={"TAU_LIMITS_REQUESTS_PER_MINUTE_IP": "0", "TAU_LIMITS_REQUESTS_PER_HOUR_USER": "0"}).init()
    for user in (*SENDERS, "erin"):
        d.add_user(f"{user}@example.test", PASSWORD)
    d.start()
    yield d
    d.stop()


def _rest(d: TauDaemon, user: str) -> Rest:
    rest = Rest(d.url)
    rest.login(f"{user}@example.test", PASSWORD)
    return rest


def _conversations(d: TauDaemon) -> list[str]:
    """Fresh plaintext groups of everyone (each test its own, so earlier tests' messages do not count)."""
    members = [f"{u}@example.test" for u in (*SENDERS, "erin")]
    alice = _rest(d, "alice")
    return [alice.create_conversation(members, f"room {i}", encrypted=False)["id"] for i in range(CONVERSATIONS)]


async def _send_all(d: TauDaemon, convs: list[str]) -> dict[str, tuple[str, str]]:
    """Every socket sends its messages one after another, round-robin over the conversations, all
    sockets at once; returns id → (conversation, body) of what the server accepted."""
    tokens = {u: _rest(d, u).token for u in SENDERS}
    sockets = [(f"{u}{k}", await Socket.connect(d.url, "/ws/messages", tokens[u]))
               for u in SENDERS for k in range(SOCKETS_PER_SENDER)]
    for _, sock in sockets:
        await sock.recv_type("synced", 30)
    accepted: dict[str, tuple[str, str]] = {}

    async def drive(name: str, sock: Socket) -> None:
        for n in range(PER_SOCKET):
            conv, body = convs[n % len(convs)], f"{name}:{n}"
            sock.send({"type": "send", "ref": n, "conversation": conv, "body": body})
            reply = await sock.recv_type("sent", 30)
            assert reply["ref"] == n and reply["conversation"] == conv
            accepted[reply["id"]] = (conv, body)

    await asyncio.gather(*[drive(name, sock) for name, sock in sockets])
    for _, sock in sockets:
        await sock.close()
    return accepted


def _check_stream(stream: list[dict[str, Any]], accepted: dict[str, tuple[str, str]]) -> None:
    """Each accepted message exactly once; per conversation in id order, and each socket's
    messages in the order it sent them."""
    ids = [m["id"] for m in stream]
    assert len(ids) == len(set(ids)), "a message arrived twice"
    assert set(ids) == set(accepted), f"missing {sorted(set(accepted) - set(ids), key=int)[:10]}"
    last: dict[str, int] = {}
    sent_order: dict[tuple[str, str], int] = {}
    for m in stream:
        conv, body = accepted[m["id"]]
        assert (m["conversation"], m["body"]) == (conv, body)
        assert int(m["id"]) > last.get(conv, 0), f"conversation {conv}: {m['id']} after {last.get(conv)}"
        last[conv] = int(m["id"])
        sock, n = body.split(":")
        assert int(n) > sent_order.get((conv, sock), -1)
        sent_order[(conv, sock)] = int(n)


class SincePoller(threading.Thread):
    """A REST client catching up with ``GET /api/messages?since=<last id>`` in a loop while the
    sends commit, then once more after they are all acknowledged."""

    def __init__(self, rest: Rest, convs: list[str]) -> None:
        super().__init__(daemon=True)
        self.rest, self.convs = rest, set(convs)
        self.seen: list[dict[str, Any]] = []
        self.last = "0"
        self.stop = threading.Event()
        self.polls = 0

    def poll(self) -> None:
        while True:
            page = self.rest.messages(since=self.last, limit=100)
            self.polls += 1
            self.seen.extend(m for m in page["items"] if m["conversation"] in self.convs)
            if page["items"]:
                self.last = page["items"][-1]["id"]
            if page["next_cursor"] is None:
                return

    def run(self) -> None:
        while not self.stop.is_set():
            self.poll()


async def _receive(receiver: Socket, convs: set[str], count: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while len(got) < count:
        frame = await receiver.recv(60)
        if frame["type"] == "message" and frame["conversation"] in convs:
            got.append(frame)
    return got


def test_concurrent_senders_reach_socket_and_since_reader_once_in_order(daemon):
    convs = _conversations(daemon)
    erin = _rest(daemon, "erin")
    poller = SincePoller(erin, convs)

    async def scenario():
        receiver = await Socket.connect(daemon.url, "/ws/messages", erin.token)
        await receiver.recv_type("synced", 30)
        receiving = asyncio.ensure_future(_receive(receiver, set(convs), TOTAL))
        poller.start()
        accepted = await _send_all(daemon, convs)
        got = await asyncio.wait_for(receiving, 90)
        await receiver.close()
        return accepted, got

    try:
        accepted, got = asyncio.run(scenario())
    finally:
        poller.stop.set()
        poller.join(30)
    assert len(accepted) == TOTAL
    poller.poll()  # everything is committed now: the last catch-up
    assert poller.polls > 2
    _check_stream(poller.seen, accepted)
    _check_stream(got, accepted)


def test_device_reconnecting_while_sends_commit_misses_nothing(daemon):
    """The socket is closed and opened again every few messages (acknowledging what it kept, so
    the queue replays only the rest), while other sockets keep sending."""
    convs = _conversations(daemon)
    erin = _rest(daemon, "erin")

    async def reconnecting_reader() -> list[dict[str, Any]]:
        kept: list[dict[str, Any]] = []
        connections = 0
        deadline = time.monotonic() + 120
        while len(kept) < TOTAL and time.monotonic() < deadline:
            sock = await Socket.connect(daemon.url, "/ws/messages", erin.token)
            connections += 1
            batch: list[dict[str, Any]] = []
            try:
                while len(batch) < 25 and len(kept) + len(batch) < TOTAL:
                    frame = await sock.recv(60)
                    if frame["type"] == "message" and frame["conversation"] in convs:
                        batch.append(frame)
                # keep exactly what is acknowledged; later frames come again on the next connection
                sock.send({"type": "ack", "ids": [m["id"] for m in batch], "ref": "r"})
                await sock.recv_type("acked", 30)
            finally:
                await sock.close()
            kept.extend(batch)
        assert connections > 3
        return kept

    async def scenario():
        reading = asyncio.ensure_future(reconnecting_reader())
        accepted = await _send_all(daemon, convs)
        return accepted, await asyncio.wait_for(reading, 150)

    accepted, kept = asyncio.run(scenario())
    _check_stream(kept, accepted)
