"""Issue 7 acceptance, through tau.client against a real ``twistd -n tau``, on SQLite and PostgreSQL.

Alice and bob have two devices each. On PostgreSQL the daemon also runs with ``[redis] url``, so
presence goes through Redis (txredisapi) there.
"""

from __future__ import annotations

import asyncio
import io
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tau.client import Client, DeviceState, Rest, Socket
from tests.support.daemon import TauDaemon
from tests.support.databases import engines

pytestmark = pytest.mark.e2e
USERS = ("alice", "bob", "carol", "dave")
PASSWORD = "secret-Pa55"
REDIS_DB = 9
SECRETS: list[str] = []  # every plaintext sent in this module, grepped for at the end


def _clear_redis_presence() -> bool:
    cli = shutil.which("redis-cli")
    if not cli or subprocess.run([cli, "ping"], capture_output=True).stdout.strip() != b"PONG":
        return False
    keys = [f"tau:presence:conns:{u}@example.test" for u in USERS]
    subprocess.run([cli, "-n", str(REDIS_DB), "DEL", *keys], capture_output=True)
    for h in ("status", "seen"):
        subprocess.run([cli, "-n", str(REDIS_DB), "HDEL", f"tau:presence:{h}",
                        *[f"{u}@example.test" for u in USERS]], capture_output=True)
    return True


@pytest.fixture(scope="module", params=engines())
def daemon(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"messenger-{request.param}")
    url, env = None, {}
    if request.param == "postgres":
        pg = request.getfixturevalue("postgres_db")
        pg.truncate_all()
        url = pg.url
        if _clear_redis_presence():
            env["TAU_REDIS_URL"] = f"redis://127.0.0.1:6379/{REDIS_DB}"
    d = TauDaemon(folder, database_url=url, listeners=("http",), env=env).init()
    for user in USERS:
        d.add_user(f"{user}@example.test", PASSWORD)
    d.start()
    d.engine, d.pg = request.param, url
    SECRETS.clear()
    yield d
    d.stop()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def _login(d: TauDaemon, user: str) -> Client:
    return await Client.login(d.url, f"{user}@example.test", PASSWORD)


def _secret(label: str) -> str:
    SECRETS.append(f"{label}-plaintext-{len(SECRETS)}-zq")
    return SECRETS[-1]


def test_alice_sends_both_bob_devices_decrypt(daemon):
    async def scenario():
        a1, a2, b1, b2 = [await _login(daemon, u) for u in ("alice", "alice", "bob", "bob")]
        for c in (a2, b1, b2):
            await c.connect()
        text = _secret("hello")
        sent = await a1.send(text, to="bob@example.test")
        for client in (b1, b2, a2):  # a2: the copy for alice's other device
            msg = await client.next_message(5)
            assert (msg.id, msg.text, msg.sender, msg.sender_device, msg.encrypted) == (
                sent["id"], text, "alice@example.test", a1.device_id, True)
        reply = _secret("reply")
        await b2.send(reply, conversation=sent["conversation"])
        assert (await b1.next_message(5)).text == reply
        assert (await a2.next_message(5)).text == reply
        await a1.connect()  # a1 was offline: the reply waits in its queue
        assert (await a1.next_message(5)).text == reply
        for c in (a1, a2, b1, b2):
            await c.disconnect()

    run(scenario())


def test_offline_device_catches_up_in_order_and_resumes_without_gaps(daemon):
    async def scenario():
        alice, bob = await _login(daemon, "alice"), await _login(daemon, "bob")
        await bob.connect()
        await alice.send(_secret("warmup"), to="bob@example.test")
        await bob.next_message(5)
        await bob.disconnect()
        texts = [_secret(f"offline{i}") for i in range(12)]
        for text in texts:
            await alice.send(text, to="bob@example.test")
        await bob.connect()
        got = [(await bob.next_message(5)).text for _ in texts]
        assert got == texts
        assert (await bob.next_event("synced", 5))["replayed"] == len(texts)

        # a raw socket for a third bob device: ack part, drop the connection, resume
        rest = Rest(daemon.url)
        rest.login("bob@example.test", PASSWORD)
        b3 = DeviceState("bob@example.test")
        rest.put_keys(b3.upload(5))
        raw = await Socket.connect(daemon.url, "/ws/messages", rest.token, {"device_id": b3.device_id})
        await raw.recv_type("synced")
        ids = [(await alice.send(_secret("resume"), to="bob@example.test"))["id"] for _ in range(6)]
        live = [(await raw.recv_type("message"))["id"] for _ in ids]
        assert live == ids
        raw.send({"type": "ack", "ids": ids[:3], "ref": "a1"})
        assert (await raw.recv_type("acked"))["ref"] == "a1"
        raw.abort()
        ids += [(await alice.send(_secret("while-away"), to="bob@example.test"))["id"] for _ in range(2)]
        raw = await Socket.connect(daemon.url, "/ws/messages", rest.token, {"device_id": b3.device_id})
        frames = []
        while (frame := await raw.recv(5))["type"] != "synced":
            if frame["type"] == "message":
                frames.append(frame)
        assert [f["id"] for f in frames] == ids[3:] and frame["replayed"] == 5
        assert all(f["envelope"] and f["from"] == "alice@example.test" for f in frames)
        raw.send({"type": "ack", "ids": [f["id"] for f in frames], "ref": 2})
        assert (await raw.recv_type("acked"))["ref"] == 2
        await raw.close()
        raw = await Socket.connect(daemon.url, "/ws/messages", rest.token, {"device_id": b3.device_id})
        assert (await raw.recv_type("synced"))["replayed"] == 0
        await raw.close()
        await bob.disconnect()

    run(scenario())


def test_receipts_and_typing_reach_the_sender(daemon):
    async def scenario():
        alice, bob = await _login(daemon, "alice"), await _login(daemon, "bob")
        await alice.connect()
        await bob.connect()
        sent = await alice.send(_secret("receipt"), to="bob@example.test")
        msg = await bob.next_message(5)  # the client acks it: a delivery receipt for alice
        delivered = await alice.next_event("receipt", 5)
        assert (delivered["kind"], delivered["user"]) == ("delivered", "bob@example.test")
        assert delivered["ids"] == [sent["id"]]
        bob.read(msg.conversation, [msg.id])
        read = await alice.next_event("receipt", 5)
        assert (read["kind"], read["conversation"], read["ids"]) == ("read", sent["conversation"], [sent["id"]])
        bob.typing(msg.conversation)
        typing = await alice.next_event("typing", 5)
        assert (typing["user"], typing["state"]) == ("bob@example.test", "started")
        history = alice.rest.messages(conversation=sent["conversation"])["items"]
        mine = [i for i in history if i["id"] == sent["id"]][0]
        assert mine["receipts"] == {"delivered": ["bob@example.test"], "read": ["bob@example.test"]}
        await alice.disconnect()
        await bob.disconnect()

    run(scenario())


def test_a_third_user_cannot_fetch_the_conversation(daemon):
    async def scenario():
        alice, carol = await _login(daemon, "alice"), await _login(daemon, "carol")
        await carol.connect()
        sent = await alice.send(_secret("not-for-carol"), to="bob@example.test")
        rest = carol.rest
        conv = sent["conversation"]
        for path in (f"/api/messages?conversation={conv}", f"/api/conversations/{conv}"):
            status, _, body = daemon.http("GET", path, token=rest.token)
            assert status == 404 and b"conversation_not_found" in body
        assert rest.messages()["items"] == []
        with pytest.raises(asyncio.TimeoutError):
            await carol.next_message(0.5)
        await carol.disconnect()

    run(scenario())


def test_one_time_prekeys_never_handed_out_twice_to_50_concurrent_fetchers(daemon):
    owner = Rest(daemon.url)
    owner.login("dave@example.test", PASSWORD)
    device = DeviceState("dave@example.test")
    owner.put_keys(device.upload(30))
    fetchers = []
    for _ in range(50):
        rest = Rest(daemon.url, owner.token)  # the token of anyone will do
        fetchers.append(rest)

    def fetch(rest: Rest):
        bundle = rest.bundles("dave@example.test", device.device_id)[0]
        return bundle["one_time_prekey"]["key_id"] if bundle["one_time_prekey"] else None

    with ThreadPoolExecutor(50) as pool:
        got = list(pool.map(fetch, fetchers))
    handed = [k for k in got if k is not None]
    assert len(handed) == 30 and sorted(handed) == sorted(device.one_time)
    assert got.count(None) == 20


async def _presence(client: Client, user: str, timeout: float = 2.0) -> dict:
    """The next presence frame about ``user`` (a user's own changes are pushed to them too)."""
    deadline = time.monotonic() + timeout
    while True:
        event = await client.next_event("presence", max(0.0, deadline - time.monotonic()))
        if event["user"] == user:
            return event


def test_presence_flips_within_two_seconds(daemon):
    async def scenario():
        alice, bob = await _login(daemon, "alice"), await _login(daemon, "bob")
        await alice.send(_secret("contact"), to="bob@example.test")  # now they share a conversation
        await alice.connect()
        started = time.monotonic()
        await bob.connect()
        event = await _presence(alice, "bob@example.test")
        assert (event["user"], event["status"]) == ("bob@example.test", "online")
        assert time.monotonic() - started < 2
        assert (await alice.presence(["bob@example.test"]))[0]["status"] == "online"
        await bob.set_presence("away")
        assert (await _presence(alice, "bob@example.test"))["status"] == "away"
        await bob.set_presence("online")
        assert (await _presence(alice, "bob@example.test"))["status"] == "online"
        started = time.monotonic()
        await bob.disconnect()
        event = await _presence(alice, "bob@example.test")
        assert (event["user"], event["status"]) == ("bob@example.test", "offline") and event["last_seen"]
        assert time.monotonic() - started < 2
        await bob.connect()
        assert (await _presence(alice, "bob@example.test"))["status"] == "online"
        started = time.monotonic()
        await bob.disconnect(abort=True)  # no close handshake: the TCP connection just goes
        assert (await _presence(alice, "bob@example.test"))["status"] == "offline"
        assert time.monotonic() - started < 2
        await alice.disconnect()

    run(scenario())


def test_tau_chat_login_send_listen(daemon, tmp_path, monkeypatch, capsys):
    import argparse

    from tau.cli import chat

    parser = argparse.ArgumentParser(prog="tau")
    chat.register(parser.add_subparsers(dest="command"))
    state = str(tmp_path / "carol.json")

    def tau_chat(*argv: str, stdin: str = "") -> int:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        args = parser.parse_args(["chat", *argv, "--state", state])
        return args.handler(args)

    assert tau_chat("login", daemon.url, "carol@example.test", "--password-stdin", stdin=PASSWORD + "\n") == 0
    assert (Path(state).stat().st_mode & 0o777) == 0o600
    text = _secret("cli")

    async def alice_sends():
        alice = await _login(daemon, "alice")
        await alice.send(text, to="carol@example.test")
        return alice

    alice = run(alice_sends())
    capsys.readouterr()
    assert tau_chat("listen", "--count", "1", "--timeout", "10") == 0
    assert f"alice@example.test: {text}" in capsys.readouterr().out
    answer = _secret("cli-answer")
    assert tau_chat("send", "alice@example.test", stdin=answer) == 0

    async def alice_reads():
        await alice.connect()
        msg = await alice.next_message(5)
        await alice.disconnect()
        return msg

    msg = run(alice_reads())
    assert (msg.sender, msg.text) == ("carol@example.test", answer)


def test_no_plaintext_in_database_or_logs(daemon):
    """Runs last: stops the daemon so its log is flushed, then greps everything it wrote."""
    control = "plaintext-control-zq"  # a bot message in a plaintext conversation: sealed at rest too (issue 16)
    rest = Rest(daemon.url)
    rest.login("alice@example.test", PASSWORD)
    rest.post_message({"to": "carol@example.test", "body": control})
    assert len(SECRETS) > 20
    daemon.stop()
    log = daemon.log.read_bytes()
    if daemon.engine == "sqlite":
        stored = b"".join(p.read_bytes() for p in sorted(daemon.data.glob("*.db*")))
    else:
        import psycopg2

        conn = psycopg2.connect(daemon.pg)
        with conn.cursor() as cur:
            cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            stored = b""
            for (table,) in cur.fetchall():
                cur.execute(f'SELECT t::text FROM "{table}" t')
                stored += "\n".join(r[0] for r in cur.fetchall()).encode()
            cur.execute("SELECT COUNT(*) FROM msg_queue WHERE envelope IS NOT NULL")
            assert cur.fetchone()[0] > 0  # ciphertext is there; the plaintext is not
        conn.close()
    assert b"carol@example.test" in stored  # the grep sees what is stored readable (addresses: routing)
    assert control.encode() not in stored
    for secret in SECRETS:
        assert secret.encode() not in stored, secret
        assert secret.encode() not in log, secret
    assert b'"envelope"' not in log and b"ciphertext" not in log
