"""Mail → chat, automatic half: unread chat messages summarised by email to users who were offline.

Against the real daemon (``[flows] chat_digest_after = 2``) on SQLite and on PostgreSQL with a
private Redis (presence then lives in Redis), with the tau messenger client (E2E messages over
REST and ``/ws/messages``) and imaplib reading the digests from INBOX. Then a two-node cluster
(PostgreSQL, Redis, S3) where both nodes run the job and each digest arrives exactly once.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import imaplib
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tau.client import Client
from tests.support.cluster import Cluster, MotoServer, RedisServer
from tests.support.daemon import TauDaemon
from tests.support.databases import PostgresDatabase, engines, postgres_available

pytestmark = pytest.mark.e2e
PASSWORD = "secret-Pa55"
NAMES = ("alice", "bob", "carol", "dave", "erin")
AFTER = 2
SECRETS: list[str] = []


def addr(name: str) -> str:
    return f"{name}@example.test"


def secret() -> str:
    SECRETS.append(f"plaintext-{len(SECRETS)}-do-not-mail")
    return SECRETS[-1]


@pytest.fixture(scope="module", params=engines())
def daemon(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TauDaemon]:
    folder = tmp_path_factory.mktemp(f"digest-{request.param}")
    url, env, redis = None, {"TAU_FLOWS_CHAT_DIGEST_AFTER": str(AFTER)}, None
    if request.param == "postgres":
        pg = request.getfixturevalue("postgres_db")
        pg.truncate_all()
        url = pg.url
        if RedisServer.available():
            redis = RedisServer().start()
            env["TAU_REDIS_URL"] = redis.url(0)
    d = TauDaemon(folder, database_url=url, listeners=("imap", "http"), env=env).init()
    for name in NAMES:
        d.add_user(addr(name), PASSWORD)
    d.start()
    yield d
    d.stop()
    if redis is not None:
        redis.stop()


def run(coro: Any, timeout: float = 90) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def digests(node: TauDaemon, name: str) -> list[str]:
    """Every chat digest in ``name``'s INBOX, decoded, read over IMAP."""
    imap = imaplib.IMAP4("127.0.0.1", node.ports["imap"])
    try:
        imap.login(addr(name), PASSWORD)
        imap.select("INBOX", readonly=True)
        _, found = imap.search(None, "HEADER", "X-Tau-Digest", "chat")
        out = []
        for num in found[0].split():
            _, data = imap.fetch(num, "(RFC822)")
            raw = bytes(data[0][1])
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            out.append(f"Subject: {msg['Subject']}\n{msg.get_content()}\n{raw.decode('utf-8', 'replace')}")
        return out
    finally:
        imap.logout()


def wait_for(node: TauDaemon, name: str, count: int, timeout: float = 20,
             measure: Callable[[list[str]], int] = len) -> list[str]:
    """``name``'s digests once ``measure`` of them reaches ``count`` (by default: how many), or at
    the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        found = digests(node, name)
        if measure(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


async def login(node: TauDaemon, name: str) -> Client:
    return await Client.login(node.url, addr(name), PASSWORD)


async def read_receipt_reaches(sender: Client) -> None:
    while (await sender.next_event("receipt"))["kind"] != "read":
        pass


def test_offline_users_get_one_digest_online_users_and_readers_none(daemon: TauDaemon) -> None:
    async def scenario() -> None:
        alice, bob, carol, dave, erin = [await login(daemon, n) for n in NAMES]
        for client in (alice, carol, dave, erin):
            await client.connect()
        for _ in range(3):
            await alice.send(secret(), to=addr("bob"))              # bob never connects
        group = await asyncio.to_thread(carol.rest.create_conversation, [addr("bob"), addr("alice")], "Project X")
        for _ in range(2):
            await carol.send(secret(), conversation=group["id"])
        await alice.send(secret(), to=addr("dave"))                 # dave stays online
        await dave.next_message()
        await alice.send(secret(), to=addr("erin"))                 # erin reads it, then leaves
        got = await erin.next_message()
        erin.read(got.conversation, [got.id])
        await read_receipt_reaches(alice)
        await erin.disconnect()
        await dave.send(secret(), to=addr("carol"))                 # carol gets it but never reads it
        await carol.next_message()
        await carol.disconnect()

        # A round summarises the messages older than the delay: the five sends land in one digest
        # unless a round's tick falls between them (a loaded machine), then in two.
        bob_digests = await asyncio.to_thread(wait_summarised, daemon, "bob", 5)
        bob_digest = "\n".join(bob_digests)
        assert summarised(bob_digests) == 5, bob_digests
        if len(bob_digests) == 1:
            assert "You have 5 unread messages in 2 conversations: from alice@example.test (3), " \
                   "from carol@example.test (2)." in bob_digest
        assert '"Project X" (conversation ' in bob_digest and "* alice@example.test (direct conversation" \
            in bob_digest
        [carol_digest] = await asyncio.to_thread(wait_for, daemon, "carol", 1)
        assert "You have 1 unread message in 1 conversation: from dave@example.test (1)." in carol_digest
        # a second user's digest holds nothing of the first user's conversations, and vice versa
        assert "Project X" not in carol_digest and "alice@example.test" not in carol_digest.split("\n\n", 1)[1]
        assert "dave" not in bob_digest
        await asyncio.sleep(AFTER + 2)
        assert len(await asyncio.to_thread(digests, daemon, "bob")) == len(bob_digests)  # at most once
        for name in ("alice", "dave", "erin"):                                  # online / read
            assert await asyncio.to_thread(digests, daemon, name) == [], name

        # a new message later: a second digest covering only it
        await alice.send(secret(), to=addr("bob"))
        second = (await asyncio.to_thread(wait_for, daemon, "bob", len(bob_digests) + 1))[len(bob_digests):]
        assert len(second) == 1 and "You have 1 unread message in 1 conversation: " \
                                    "from alice@example.test (1)." in second[0]
        # bob comes online: nothing while he is there, nothing once he has read it
        await bob.connect()
        sent = await alice.send(secret(), to=addr("bob"))
        got = await bob.next_message()
        while got.id != sent["id"]:              # the queued earlier ones come first
            got = await bob.next_message()
        await asyncio.sleep(AFTER + 2)
        assert len(await asyncio.to_thread(digests, daemon, "bob")) == 2
        bob.read(got.conversation, [got.id])
        await read_receipt_reaches(alice)
        await bob.disconnect()
        await asyncio.sleep(2 * AFTER + 2)
        assert len(await asyncio.to_thread(digests, daemon, "bob")) == 2
        await alice.disconnect()
        await dave.disconnect()

    run(scenario())
    everything = "".join("".join(digests(daemon, n)) for n in NAMES)
    assert "unread" in everything and not any(s in everything for s in SECRETS)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if not postgres_available() or not RedisServer.available() or MotoServer.binary() is None:
        pytest.skip("needs PostgreSQL, redis-server and moto_server")
    folder = tmp_path_factory.mktemp("digest-cluster")
    pg = PostgresDatabase("tau_digest_cluster")
    redis, moto = RedisServer().start(), MotoServer().start()
    env = {"TAU_REDIS_URL": redis.url(0), **moto.env("tau-digest"), "TAU_FLOWS_CHAT_DIGEST_AFTER": str(AFTER)}
    nodes = Cluster(folder, 2, pg.url, env, listeners=("imap", "http")).init(tuple(addr(n) for n in NAMES),
                                                                            PASSWORD).start()
    try:
        yield nodes
    finally:
        nodes.stop()
        moto.stop()
        redis.stop()
        pg.drop()


def test_in_a_cluster_each_digest_is_sent_by_one_node_only(cluster: Cluster) -> None:
    """Both nodes run digest rounds over the same users: every message is summarised exactly once,
    and every digest in a mailbox was delivered by one node (one log line each). A round only
    summarises messages older than the delay, so two sends can land in one digest or in two,
    depending on where the round's tick falls between them; the count per message is what holds."""
    a, b = cluster.nodes

    async def scenario() -> None:
        alice = await login(a, "alice")
        for name in NAMES[1:]:
            await login(b, name)                 # registers a device on node B; never connects
        for name in NAMES[1:]:
            for _ in range(2):
                await alice.send(secret(), to=addr(name))

    run(scenario())
    for name in NAMES[1:]:
        wait_summarised(a, name, 2, timeout=30 + 2 * AFTER)
    time.sleep(2 * AFTER + 2)                   # rounds keep running on both nodes
    delivered = 0
    for name in NAMES[1:]:
        on_a, on_b = digests(a, name), digests(b, name)
        assert len(on_a) == len(on_b) >= 1, name  # one mailbox, seen through either node
        assert summarised(on_a) == 2, (name, on_a)
        delivered += len(on_a)
    logs = [n.log.read_text() for n in cluster.nodes]
    sent = sum(log.count("chat digest delivered") for log in logs)
    assert sent == delivered, logs


def wait_summarised(node: TauDaemon, name: str, count: int, timeout: float = 30) -> list[str]:
    """``name``'s digests once together they summarise ``count`` messages (or at the timeout)."""
    return wait_for(node, name, count, timeout, measure=summarised)


def summarised(found: list[str]) -> int:
    """How many chat messages these digests summarise together."""
    counts = [re.search(r"You have (\d+) unread messages? in", text) for text in found]
    return sum(int(m.group(1)) for m in counts if m)
