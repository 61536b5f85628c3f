"""Test support for TauCalendar: an in-process site with the calendar service (driven by
``FakeHttpClient``) and a small iCalendar builder. Used by tests/calendar and tests/e2e."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tau.auth.scopes import FULL as FULL_SCOPE
from tests.support.harness import add_user, make_registry
from tests.support.http import FakeHttpClient, HttpResponse

if TYPE_CHECKING:
    from tau.registry import Registry

ALICE, BOB, CAROL = "alice@example.test", "bob@example.test", "carol@example.test"
PASSWORD = "secret-Pa55"
C_NS = "urn:ietf:params:xml:ns:caldav"


class Host:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.http: Any = None
        self.services: list[Any] = []

    def add_listener(self, key: str, factory: Any) -> None:
        pass

    def add_service(self, service: Any) -> None:
        self.services.append(service)

    def listener_configured(self, key: str) -> bool:
        return False

    def on_drain(self, drain: Any) -> None:
        pass


def ics(uid: str, start: str = "20240506T100000Z", end: str = "20240506T110000Z", summary: str = "Meeting",
        extra: str = "", component: str = "VEVENT", more: str = "") -> str:
    """A small VCALENDAR (CRLF line ends)."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//tests//EN", f"BEGIN:{component}", f"UID:{uid}",
             "DTSTAMP:20240101T000000Z"]
    if start:
        lines.append(f"DTSTART:{start}" if ":" not in start and ";" not in start else f"DTSTART{start}")
    if end:
        key = "DUE" if component == "VTODO" else "DTEND"
        lines.append(f"{key}:{end}" if ":" not in end and ";" not in end else f"{key}{end}")
    lines.append(f"SUMMARY:{summary}")
    lines += [x for x in extra.split("\n") if x]
    lines.append(f"END:{component}")
    lines += [x for x in more.split("\n") if x]
    lines.append("END:VCALENDAR")
    return "\r\n".join(lines) + "\r\n"


class Cal:
    """A registry with the HTTP core and TauCalendar installed, plus alice, bob and carol."""

    def __init__(self, registry: Registry) -> None:
        from tau.calendar import service as calendar_service
        from tau.http import service as http_service

        self.registry = registry
        host = Host(registry)
        http_service.install(registry, host)
        calendar_service.install(registry, host)
        self.site = host.http.site
        self.client = FakeHttpClient(self.site)
        self.alice = add_user(registry, ALICE, PASSWORD)
        self.bob = add_user(registry, BOB, PASSWORD)
        self.carol = add_user(registry, CAROL, PASSWORD)
        self.cals = registry.calendars

    def basic(self, user: str = ALICE, password: str = PASSWORD) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}

    def token(self, user: str = ALICE) -> str:
        return str(self.registry.tokens.issue(user, scope=FULL_SCOPE))

    def api(self, method: str, path: str, obj: Any = None, user: str = ALICE) -> HttpResponse:
        if obj is None:
            return self.client.request(method, path, token=self.token(user))
        return self.client.post_json(path, obj, method=method, token=self.token(user))

    def dav(self, method: str, path: str, body: bytes | str = b"", user: str = ALICE,
            headers: dict[str, str] | None = None) -> HttpResponse:
        if isinstance(body, str):
            body = body.encode()
        hdrs = {**self.basic(user), **(headers or {})}
        if not path.startswith("/"):
            path = f"/dav/calendars/{user}/{path}"
        return self.client.request(method, path, body, headers=hdrs)

    def put(self, path: str, text: str, user: str = ALICE, **headers: str) -> HttpResponse:
        return self.dav("PUT", path, text, user, {"Content-Type": "text/calendar; charset=utf-8", **headers})

    def report(self, path: str, xml: str, user: str = ALICE, depth: str = "1") -> HttpResponse:
        return self.dav("REPORT", path, xml, user, {"Depth": depth, "Content-Type": "application/xml"})


def make_cal(folder: Path, db_url: str) -> Cal:
    registry = make_registry(folder, db_url, limits={"requests_per_minute_ip": "0", "requests_per_hour_user": "0"})
    return Cal(registry)
