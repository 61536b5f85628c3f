"""An in-process HTTP core with the admin service installed; alice is an admin, bob is not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.application.service import MultiService

from tau.admin import service as admin_service
from tau.app.host import AppHost
from tau.http import service
from tests.support.harness import add_user, make_registry
from tests.support.http import FakeHttpClient, HttpResponse

ALICE, BOB, PASSWORD = "alice@example.test", "bob@example.test", "secret-Pa55"


class Admin:
    def __init__(self, registry: Any) -> None:
        self.registry = registry
        self.host = AppHost(registry, MultiService(), MultiService())
        service.install(registry, self.host)
        admin_service.install(registry, self.host)
        self.client = FakeHttpClient(self.host.http.site)

    def token(self, username: str = ALICE, password: str = PASSWORD, **extra: str) -> str:
        r = self.grant(username, password, **extra)
        assert r.status == 200, r.body
        return r.json()["access_token"]

    def grant(self, username: str = ALICE, password: str = PASSWORD, **extra: str) -> HttpResponse:
        return self.client.post_form("/oauth2/token", {"grant_type": "password", "username": username,
                                                       "password": password, **extra})

    def get(self, path: str, token: str | None = None) -> HttpResponse:
        return self.client.get(path, token=token)

    def json(self, method: str, path: str, body: Any, token: str | None = None) -> HttpResponse:
        return self.client.post_json(path, body, method=method, token=token)


@pytest.fixture
def admin(tmp_path: Path, db_url: str) -> Iterator[Admin]:
    registry = make_registry(tmp_path / "tau", db_url)
    add_user(registry, ALICE, PASSWORD, fast_hash=True, is_admin=True)
    add_user(registry, BOB, PASSWORD, fast_hash=True)
    yield Admin(registry)
    registry.db.close()
