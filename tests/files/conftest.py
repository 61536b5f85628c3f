"""In-process TauCloud: the real HTTP site with the files service, driven by FakeHttpClient."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from tau.auth.scopes import FULL as FULL_SCOPE
from tests.support.harness import add_user, make_registry
from tests.support.http import FakeHttpClient, HttpResponse

ALICE, BOB = "alice@example.test", "bob@example.test"
PASSWORD = "secret-Pa55"


class Host:
    def __init__(self, registry: Any) -> None:
        self.registry = registry
        self.http: Any = None

    def add_listener(self, key: str, factory: Any) -> None:
        pass

    def add_service(self, service: Any) -> None:
        pass


class Cloud:
    """A registry with the HTTP core and TauCloud installed, plus alice and bob."""

    def __init__(self, registry: Any) -> None:
        from tau.files import service as files_service
        from tau.http import service as http_service

        self.registry = registry
        host = Host(registry)
        http_service.install(registry, host)
        files_service.install(registry, host)
        self.site = host.http.site
        self.client = FakeHttpClient(self.site)
        self.alice = add_user(registry, ALICE, PASSWORD)
        self.bob = add_user(registry, BOB, PASSWORD)
        self.tree = registry.files_tree
        self.dav_server = registry.files_dav

    def basic(self, user: str = ALICE, password: str = PASSWORD) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}

    def token(self, user: str = ALICE) -> str:
        """Every scope, ``admin`` included: the router still needs the admin role for admin routes."""
        return str(self.registry.tokens.issue(user, scope=FULL_SCOPE + " admin"))

    def api(self, method: str, path: str, body: bytes = b"", user: str = ALICE, **kw: Any) -> HttpResponse:
        return self.client.request(method, path, body, token=self.token(user), **kw)

    def dav(self, method: str, path: str, body: bytes | str = b"", user: str = ALICE,
            headers: dict[str, str] | None = None, **kw: Any) -> HttpResponse:
        if isinstance(body, str):
            body = body.encode()
        hdrs = {**self.basic(user), **(headers or {})}
        if not path.startswith("/"):
            path = f"/dav/files/{user}/{path}"
        return self.client.request(method, path, body, headers=hdrs, **kw)

    def blob_keys(self) -> list[str]:
        return sorted(self.registry.blob_backend.list_older(float("inf")))

    def temp_files(self) -> list[str]:
        root = Path(self.registry.blob_backend.root) / "tmp"
        return sorted(p.name for p in root.iterdir()) if root.exists() else []


@pytest.fixture
def cloud(tmp_path: Path, db_url: str) -> Any:
    registry = make_registry(tmp_path / "tau", db_url, limits={"requests_per_minute_ip": "0",
                                                               "requests_per_hour_user": "0"})
    yield Cloud(registry)
    registry.db.close()
