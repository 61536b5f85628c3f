"""Issue 7 bad input, each a test, against a real ``twistd -n tau`` on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import pytest

from tau.client import ApiError, Closed, DeviceState, Rest, Socket
from tests.support.daemon import TauDaemon
from tests.support.databases import daemon_database_url, engines

pytestmark = pytest.mark.e2e
PASSWORD = "secret-Pa55"


@pytest.fixture(scope="module", params=engines())
def daemon(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"messenger-bad-{request.param}")
    url = daemon_database_url(request)
    d = TauDaemon(folder, database_url=url, listeners=("http",)).init()
    for user in ("alice", "bob"):
        d.add_user(f"{user}@example.test", PASSWORD)
    d.start()
    d.rest = {}
    for user in ("alice", "bob"):
        d.rest[user] = Rest(d.url)
        d.rest[user].login(f"{user}@example.test", PASSWORD)
    yield d
    d.stop()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 90))


async def _socket(d: TauDaemon, user: str, **params) -> Socket:
    sock = await Socket.connect(d.url, "/ws/messages", d.rest[user].token, params)
    await sock.recv_type("synced")
    return sock


def test_malformed_frames_get_error_frames_and_the_socket_stays(daemon):
    async def scenario():
        sock = await _socket(daemon, "alice")
        cases = [(b"not json", False, "malformed"), (b"[1, 2]", False, "malformed"),
                 (b'{"type": 5}', False, "malformed"),
                 (b'{"no": "type"}', False, "malformed"), (b"\xff\xfe", True, "malformed"),
                 (b'{"type": "launch_missiles"}', False, "unknown_type"),
                 (b'{"type": "ack", "ids": "all"}', False, "invalid_request"),
                 (b'{"type": "typing", "conversation": "999999", "state": "started"}', False, "conversation_not_found"),
                 (b'{"type": "send", "ref": "r1", "to": "bob@example.test"}', False, "invalid_request"),
                 (b'{"type": "presence", "status": "on fire"}', False, "invalid_status"),
                 (b"[" * 100_000 + b"]" * 100_000, False, "malformed")]
        for payload, binary, code in cases:
            sock.send_raw(payload, binary=binary)
            error = await sock.recv_type("error", 5)
            assert error["error"] == code, (payload[:40], error)
        sock.send({"type": "ping", "ref": 7})
        assert await sock.recv_type("pong", 5) == {"type": "pong", "ref": 7}
        await sock.close()
        assert sock.close_code == 1000

    run(scenario())


def test_frames_before_authentication_close_with_4401(daemon):
    async def scenario():
        for token, query in [(None, False), ("not-a-token", False), ("not-a-token", True)]:
            sock = await Socket.connect(daemon.url, "/ws/messages", token, token_in_query=query)
            try:
                sock.send({"type": "ping"})
            except Closed:
                pass  # already closed by the server: just as good
            with pytest.raises(Closed):
                while True:
                    await sock.recv(5)
            assert sock.close_code == 4401, (token, query, sock.close_code)
        # the query-string form of a good token is accepted (browsers cannot set headers)
        sock = await Socket.connect(daemon.url, "/ws/messages", daemon.rest["alice"].token, token_in_query=True)
        assert (await sock.recv_type("hello"))["user"] == "alice@example.test"
        await sock.close()
        # an unknown device is refused once authenticated
        sock = await Socket.connect(daemon.url, "/ws/messages", daemon.rest["alice"].token, {"device_id": 424242})
        with pytest.raises(Closed):
            await sock.recv(5)
        assert sock.close_code == 4400 and sock.close_reason == "unknown_device"

    run(scenario())


def test_oversize_frame_closes_with_1009(daemon):
    async def scenario():
        sock = await _socket(daemon, "alice")
        sock.send_raw(json.dumps({"type": "ping", "pad": "x" * (1024 * 1024)}).encode())
        with pytest.raises(Closed):
            while True:
                await sock.recv(10)
        assert sock.close_code == 1009

    run(scenario())


def test_envelope_for_a_device_that_does_not_exist(daemon):
    alice, bob = DeviceState("alice@example.test"), DeviceState("bob@example.test")
    daemon.rest["alice"].put_keys(alice.upload(2))
    daemon.rest["bob"].put_keys(bob.upload(2))
    envelopes = [{"user": "bob@example.test", "device_id": bob.device_id, "ciphertext": "QUJD"},
                 {"user": "bob@example.test", "device_id": bob.device_id + 1, "ciphertext": "QUJD"}]
    with pytest.raises(ApiError) as refused:
        daemon.rest["alice"].post_message({"to": "bob@example.test", "device_id": alice.device_id,
                                           "envelopes": envelopes})
    assert refused.value.status == 409
    assert refused.value.body["extra"] == [{"user": "bob@example.test", "device_id": bob.device_id + 1}]
    assert refused.value.body["missing"] == []

    async def over_the_socket():
        sock = await _socket(daemon, "alice", device_id=alice.device_id)
        sock.send({"type": "send", "ref": "x", "to": "bob@example.test", "envelopes": envelopes})
        error = await sock.recv_type("error", 5)
        assert (error["error"], error["ref"]) == ("device_mismatch", "x")
        assert error["extra"] == [{"user": "bob@example.test", "device_id": bob.device_id + 1}]
        sock.send({"type": "send", "ref": "y", "to": "bob@example.test", "envelopes": envelopes[:1]})
        assert (await sock.recv_type("sent", 5))["ref"] == "y"  # the socket stayed usable
        await sock.close()

    run(over_the_socket())


def test_forged_signed_prekey_signature_is_400(daemon):
    upload = DeviceState("alice@example.test").upload(1)
    forged = bytearray(base64.b64decode(upload["signed_prekey"]["signature"]))
    forged[10] ^= 0x40
    upload["signed_prekey"]["signature"] = base64.b64encode(bytes(forged)).decode()
    with pytest.raises(ApiError) as refused:
        daemon.rest["alice"].put_keys(upload)
    assert (refused.value.status, refused.value.error) == (400, "invalid_signature")
    bundles = daemon.rest["bob"].bundles("alice@example.test", upload["device_id"])
    assert bundles == []


def test_burst_of_10000_messages_is_rate_limited_and_nothing_acknowledged_is_lost(daemon):
    """Plaintext conversation (keyless device 0 on both sides) to keep the client cost out of it."""

    async def scenario():
        sender = await _socket(daemon, "alice")
        receiver = await Socket.connect(daemon.url, "/ws/messages", daemon.rest["bob"].token)
        # bob has a registered device from an earlier test: a plaintext message goes to it, not
        # to device 0, so the receiver listens as that device when there is one
        devices = daemon.rest["bob"].key_counts()
        if devices:
            await receiver.close()
            receiver = await Socket.connect(daemon.url, "/ws/messages", daemon.rest["bob"].token,
                                            {"device_id": devices[0]["device_id"]})
        await receiver.recv_type("synced")
        conv = daemon.rest["alice"].post_message({"to": "bob@example.test", "body": "start"})["conversation"]
        await receiver.recv_type("message")
        started = time.monotonic()
        for i in range(10_000):
            sender.send({"type": "send", "ref": i, "conversation": conv, "body": f"burst {i}"})
        await sender.drain()
        accepted, limited = {}, set()
        while len(accepted) + len(limited) < 10_000:
            frame = await sender.recv(30)
            if frame["type"] == "sent":
                accepted[frame["ref"]] = frame["id"]
            elif frame["type"] == "error" and frame["error"] == "rate_limited":
                assert frame["retry_after"] > 0
                limited.add(frame["ref"])
        assert limited and accepted and len(accepted) < 2000, (len(accepted), len(limited))
        assert not set(accepted) & limited
        # every message the server acknowledged reaches bob, in the order alice sent them
        received = []
        while len(received) < len(accepted):
            frame = await receiver.recv_type("message", 30)
            received.append(frame)
        expected = [accepted[ref] for ref in sorted(accepted)]
        assert [f["id"] for f in received] == expected
        assert [f["body"] for f in received] == [f"burst {ref}" for ref in sorted(accepted)]
        # and the limiter lets traffic through again once the bucket refills
        await asyncio.sleep(1.0)
        sender.send({"type": "send", "ref": "after", "conversation": conv, "body": "after the storm"})
        assert (await sender.recv_type("sent", 10))["ref"] == "after"
        assert time.monotonic() - started < 60
        await sender.close()
        await receiver.close()

    run(scenario())


def _raw(d: TauDaemon, request: bytes) -> tuple[str, dict[str, str], bytes]:
    """Send raw bytes to the daemon's HTTP port; (status line, headers, what followed them)."""
    import socket

    with socket.create_connection(("127.0.0.1", d.ports["http"]), timeout=30) as s:
        s.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        want = int(headers.get("content-length", "0") or 0)
        while len(rest) < want:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
        return lines[0], headers, rest


def test_plain_http_to_a_socket_is_a_json_error_and_no_server_version_leaks(daemon):
    """A browser or scanner GETting /ws/... without an upgrade used to get Autobahn's HTML status page
    (version, no CSP/nosniff/X-Request-ID); the 101 answer named AutobahnPython/<version>."""
    token = daemon.rest["alice"].token
    for path in ("/ws/messages", "/ws/signal"):
        status, headers, body = _raw(daemon, f"GET {path} HTTP/1.1\r\nHost: localhost\r\n"
                                              "Connection: close\r\n\r\n".encode())
        assert status.startswith("HTTP/1.1 426"), (path, status, body[:200])
        assert headers.get("content-type", "").startswith("application/json"), headers
        error = json.loads(body)
        assert error["error"] == "upgrade_required" and error["request_id"] == headers.get("x-request-id"), error
        assert headers.get("x-content-type-options") == "nosniff" and "default-src 'none'" in \
            headers.get("content-security-policy", ""), headers
        assert headers.get("upgrade", "").lower() == "websocket", headers
        assert b"autobahn" not in body.lower(), body
        assert "server" not in headers, headers  # neither Autobahn's nor TwistedWeb's version
        status, headers, _ = _raw(daemon, (f"GET {path}?access_token={token} HTTP/1.1\r\nHost: localhost\r\n"
                                           "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                                           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").encode())
        assert status.startswith("HTTP/1.1 101"), (path, status)
        assert "server" not in headers, headers
