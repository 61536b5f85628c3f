"""An in-process tau with every service plugin installed on one HTTP site (real registry and
database, fake clock): for tests that cross services, such as scopes and session revocation.
No listener is opened and no background service started; requests go through ``FakeHttpClient``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from twisted.application.service import MultiService

from tau.app.host import AppHost
from tau.app.plugins import discover
from tests.support.harness import add_user, make_registry
from tests.support.http import FakeHttpClient, HttpResponse

if TYPE_CHECKING:
    from tau.registry import Registry

PASSWORD = "secret-Pa55"


class Suite:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.host = AppHost(registry, MultiService(), MultiService())
        for plugin in discover():
            plugin.install(registry, self.host)
        self.client = FakeHttpClient(self.host.http.site)

    @property
    def clock(self) -> Any:
        return self.registry.reactor

    def grant(self, username: str, password: str = PASSWORD, **extra: str) -> HttpResponse:
        return self.client.post_form("/oauth2/token", {"grant_type": "password", "username": username,
                                                       "password": password, **extra})

    def tokens(self, username: str, password: str = PASSWORD, **extra: str) -> dict[str, Any]:
        r = self.grant(username, password, **extra)
        assert r.status == 200, r.body
        return r.json()

    def token(self, username: str, password: str = PASSWORD, **extra: str) -> str:
        return str(self.tokens(username, password, **extra)["access_token"])

    def get(self, path: str, token: str | None = None, **kwargs: Any) -> HttpResponse:
        return self.client.get(path, token=token, **kwargs)

    def request(self, method: str, path: str, body: bytes = b"", **kwargs: Any) -> HttpResponse:
        return self.client.request(method, path, body, **kwargs)


def make_suite(folder: Path, database_url: str, users: dict[str, bool], secret_from: Path | None = None,
               **sections: dict[str, str]) -> Suite:
    """A suite with ``users`` (address → is_admin); ``secret_from``: share another node's secret
    (a token issued by one is accepted by the other, as in a cluster)."""
    if secret_from is not None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "secret").write_bytes((secret_from / "secret").read_bytes())
        (folder / "secret").chmod(0o600)
    registry = make_registry(folder, database_url, **sections)
    from tau.auth import accounts

    for address, is_admin in users.items():
        if registry.db.sync.run("test_get_user", accounts.get_user, address) is None:
            add_user(registry, address, PASSWORD, fast_hash=True, is_admin=is_admin)
    return Suite(registry)
