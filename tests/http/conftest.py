"""An in-process tau HTTP core: the real registry (SQLite or PostgreSQL), the real AppHost and
``tau.http.service.install``, driven with real HTTP bytes through ``FakeHttpClient``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.web.resource import Resource

from tau.app.host import AppHost
from tau.http import service
from tau.http.router import json_response, read_json_object
from tests.support.harness import add_user, make_registry
from tests.support.http import FakeHttpClient, HttpResponse

ALICE, BOB, PASSWORD = "alice@example.test", "bob@example.test", "secret-Pa55"


class Boom(Exception):
    pass


class WhoAmI(Resource):
    """A plain twisted.web subtree (as DAV is): says who called, what path and how many bytes."""

    isLeaf = True

    def render(self, request: Any) -> bytes:
        user = getattr(request.user, "address", None)
        body = request.content.read() if request.content else b""
        request.setHeader(b"content-type", b"application/json")
        return json.dumps({"user": user, "postpath": [p.decode() for p in request.postpath],
                           "bytes": len(body)}).encode()


class Tau:
    """One installed HTTP core plus helpers a test reads like a client would."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry
        self.host = AppHost(registry, MultiService(), MultiService())
        service.install(registry, self.host)
        self.site = self.host.http.site
        self.client = FakeHttpClient(self.site)
        self.gate: defer.Deferred | None = None  # the pending /test/slow request waits on it
        self._test_routes()

    def _test_routes(self) -> None:
        """What other services mount: a JSON-reading endpoint and one with a bug in it."""
        async def echo(request: Any) -> Any:
            return json_response({"got": await read_json_object(request)})

        async def boom(request: Any) -> Any:
            raise Boom("a bug with a secret in it: hunter2")

        async def slow(request: Any) -> Any:
            self.gate = defer.Deferred()
            await self.gate
            return json_response({"done": True})

        self.host.http.route("POST", "/test/echo", echo, auth="none")
        self.host.http.route("GET", "/test/boom", boom, auth="none")
        self.host.http.route("GET", "/test/slow", slow, auth="none")
        self.host.http.mount("/test/dav", WhoAmI(), auth="any", scope="files")
        self.host.http.mount("/test/upload", WhoAmI(), auth="none", body_limit=None)

    @property
    def clock(self) -> Any:
        return self.registry.reactor

    def request(self, *args: Any, **kwargs: Any) -> HttpResponse:
        return self.client.request(*args, **kwargs)

    def get(self, path: str, **kwargs: Any) -> HttpResponse:
        return self.client.get(path, **kwargs)

    def post_form(self, path: str, form: dict[str, str], **kwargs: Any) -> HttpResponse:
        return self.client.post_form(path, form, **kwargs)

    def password_grant(self, username: str = ALICE, password: str = PASSWORD, **extra: Any) -> HttpResponse:
        return self.post_form("/oauth2/token", {"grant_type": "password", "username": username,
                                                "password": password, **extra})

    def tokens(self, username: str = ALICE, password: str = PASSWORD) -> dict[str, Any]:
        response = self.password_grant(username, password)
        assert response.status == 200, response.body
        return response.json()

    def token(self, username: str = ALICE, password: str = PASSWORD) -> str:
        return self.tokens(username, password)["access_token"]

    def refresh(self, refresh_token: str) -> HttpResponse:
        return self.post_form("/oauth2/token", {"grant_type": "refresh_token", "refresh_token": refresh_token})

    def me(self, token: str, **kwargs: Any) -> HttpResponse:
        return self.get("/api/me", token=token, **kwargs)


@pytest.fixture
def make_tau(tmp_path: Path, db_url: str) -> Iterator[Callable[..., Tau]]:
    """``make_tau(limits={...})``: a fresh installation with alice and bob, config sections given."""
    made: list[Tau] = []

    def make(**sections: dict[str, str]) -> Tau:
        registry = make_registry(tmp_path / f"tau{len(made)}", db_url, **sections)
        for address in (ALICE, BOB):
            add_user(registry, address, PASSWORD, fast_hash=True)
        made.append(Tau(registry))
        return made[-1]

    yield make
    for tau in made:
        tau.registry.db.close()


@pytest.fixture
def tau(make_tau: Callable[..., Tau]) -> Tau:
    return make_tau()

