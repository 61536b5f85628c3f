"""In-process TauMail REST for tests: the HTTP core, TauCloud and the mail API on a test registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tau.auth.scopes import FULL as FULL_SCOPE
from tests.support.harness import add_user, make_registry
from tests.support.http import FakeHttpClient, HttpResponse

if TYPE_CHECKING:
    from tau.registry import Registry

ALICE, BOB, PASSWORD = "alice@example.test", "bob@example.test", "secret-Pa55"


class Host:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.http: Any = None

    def add_listener(self, key: str, factory: Any) -> None:
        pass

    def add_service(self, service: Any) -> None:
        pass

    def listener_configured(self, key: str) -> bool:
        return False


class Mail:
    def __init__(self, registry: Registry) -> None:
        from tau.files import service as files_service
        from tau.http import service as http_service
        from tau.mail import api_service

        self.registry = registry
        host = self._host = Host(registry)
        http_service.install(registry, host)
        files_service.install(registry, host)
        api_service.install(registry, host)
        self.client = FakeHttpClient(host.http.site)
        self.store = registry.mail_store
        add_user(registry, ALICE, PASSWORD)
        add_user(registry, BOB, PASSWORD)

    def api(self, method: str, path: str, obj: Any = None, user: str = ALICE, raw: bytes | None = None,
            **kw: Any) -> HttpResponse:
        body = raw if raw is not None else (json.dumps(obj).encode() if obj is not None else b"")
        headers = {"Content-Type": "application/json"} if obj is not None else {}
        token = str(self.registry.tokens.issue(user, scope=FULL_SCOPE))
        return self.client.request(method, path, body, token=token, headers=headers, **kw)

    def send(self, user: str = ALICE, **fields: Any) -> str:
        r = self.api("POST", "/api/emails", fields, user=user)
        assert r.status == 202, r.body
        return r.json()["id"]

    def items(self, user: str = ALICE, query: str = "mailbox=INBOX") -> list[dict[str, Any]]:
        r = self.api("GET", f"/api/emails?{query}", user=user)
        assert r.status == 200, r.body
        return r.json()["items"]

    def queue(self) -> list[tuple]:
        sql = "SELECT rcpt_to, mail_from, status FROM outbound_queue"
        return self.registry.db.sync.run("q", lambda t: t.query(sql))


def mail_world(tmp_path: Path, db_url: str, factory: Any = Mail) -> Any:
    """Generator for a test module's fixture: ``yield from mail_world(tmp_path, db_url)``."""
    registry = make_registry(tmp_path / "tau", db_url, limits={"requests_per_minute_ip": "0",
                                                               "requests_per_hour_user": "0"})
    yield factory(registry)
    registry.db.close()
