"""An in-process tau with the HTTP core, TauCloud, the mail API and the web app installed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.http import HttpResponse
from tests.support.mail_api import ALICE, PASSWORD, Mail, mail_world


class Web(Mail):
    def __init__(self, registry: Any) -> None:
        super().__init__(registry)
        from tau.web import service

        service.install(registry, self._host)

    def session(self, user: str = ALICE) -> tuple[str, str]:
        """(Cookie header, CSRF token) of a browser signed in through ``POST /api/session``."""
        r = self.client.post_json("/api/session", {"username": user, "password": PASSWORD})
        assert r.status == 200, r.body
        cookies = [v.split(";")[0] for k, v in r.raw_headers if k.lower() == "set-cookie"]
        return "; ".join(cookies), r.json()["csrf_token"]

    def browser(self, method: str, path: str, cookie: str, csrf: str | None = None, obj: Any = None,
                **headers: str) -> HttpResponse:
        hdrs = {"Cookie": cookie, **headers}
        if csrf is not None:
            hdrs["X-CSRF-Token"] = csrf
        if obj is not None:
            return self.client.post_json(path, obj, method=method, headers=hdrs)
        return self.client.request(method, path, headers=hdrs)


@pytest.fixture
def web(tmp_path: Path, db_url: str) -> Iterator[Web]:
    yield from mail_world(tmp_path, db_url, factory=Web)
