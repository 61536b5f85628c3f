"""Issue 13 items 2 and 3 against a real ``twistd -n tau`` on SQLite and PostgreSQL: WebSockets check
scopes (``/ws/messages`` needs chat, ``/ws/signal`` calls) and a revoked session is refused at once."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlencode

import pytest

from tau.client import Closed, Socket
from tests.support.daemon import TauDaemon
from tests.support.databases import daemon_database_url, engines

pytestmark = pytest.mark.e2e
PASSWORD = "secret-Pa55"
BOB = "bob@example.test"


@pytest.fixture(scope="module", params=engines())
def daemon(request: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp(f"scopes-{request.param}")
    url = daemon_database_url(request)
    d = TauDaemon(folder, database_url=url, listeners=("http",)).init()
    d.add_user(BOB, PASSWORD)
    d.start()
    yield d
    d.stop()


def grant(d: TauDaemon, scope: str) -> dict[str, Any]:
    status, _, body = d.http("POST", "/oauth2/token", urlencode(
        {"grant_type": "password", "username": BOB, "password": PASSWORD, "scope": scope}).encode(),
        {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200, body
    return json.loads(body)


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


async def _refused(d: TauDaemon, path: str, token: str) -> tuple[int | None, str | None]:
    sock = await Socket.connect(d.url, path, token)
    with pytest.raises(Closed):
        while True:
            await sock.recv(5)
    return sock.close_code, sock.close_reason


def test_sockets_need_their_scope(daemon: TauDaemon) -> None:
    chat, calls, calendar = (grant(daemon, s)["access_token"] for s in ("chat", "calls", "calendar"))

    async def scenario() -> None:
        sock = await Socket.connect(daemon.url, "/ws/messages", chat)
        assert (await sock.recv_type("hello"))["user"] == BOB
        await sock.close()
        assert await _refused(daemon, "/ws/messages", calendar) == (4403, "insufficient_scope")
        assert await _refused(daemon, "/ws/messages", calls) == (4403, "insufficient_scope")
        sock = await Socket.connect(daemon.url, "/ws/signal", calls)
        assert (await sock.recv_type("hello"))["user"] == BOB
        await sock.close()
        assert await _refused(daemon, "/ws/signal", chat) == (4403, "insufficient_scope")

    run(scenario())


def test_a_revoked_session_is_refused_at_once_over_http_and_websocket(daemon: TauDaemon) -> None:
    session = grant(daemon, "mail chat")
    token = session["access_token"]
    assert daemon.http("GET", "/api/emails", token=token)[0] == 200

    async def scenario() -> None:
        open_socket = await Socket.connect(daemon.url, "/ws/messages", token)
        await open_socket.recv_type("synced")
        status, _, _ = daemon.http("POST", "/oauth2/revoke", urlencode({"token": session["refresh_token"]}).encode(),
                                   {"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 200
        # the socket opened with the session is closed too, not left running until it drops
        with pytest.raises(Closed):
            while True:
                await open_socket.recv(10)
        assert (open_socket.close_code, open_socket.close_reason) == (4401, "session_revoked")
        status, _, body = daemon.http("GET", "/api/emails", token=token)
        assert status == 401 and json.loads(body)["error"] == "invalid_token", body
        assert (await _refused(daemon, "/ws/messages", token))[0] == 4401

    run(scenario())
