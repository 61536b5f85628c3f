"""An in-process TauConnect: the real HTTP routes on a fake reactor, four users with tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tau.auth.scopes import FULL as FULL_SCOPE
from tau.http.service import HttpHost
from tests.support.harness import add_user
from tests.support.http import FakeHttpClient


@dataclass
class App:
    registry: Any
    http: FakeHttpClient
    calls: Any
    tokens: dict[str, str]
    events: list[tuple[str, dict]]

    def call(self, who: str, method: str, path: str, body: Any = None):
        if body is None:
            return self.http.request(method, path, token=self.tokens[who])
        return self.http.post_json(path, body, method=method, token=self.tokens[who])


@pytest.fixture
def app(registry) -> App:
    from tau.connect import api
    from tau.connect.service import build

    host = HttpHost(registry)
    calls, hub, resource = build(registry)
    api.register(host, calls)
    tokens = {}
    for name in ("alice", "bob", "carol", "mallory"):
        add_user(registry, f"{name}@example.test")
        tokens[name] = registry.tokens.issue(f"{name}@example.test", scope=FULL_SCOPE)
    events: list[tuple[str, dict]] = []
    for topic in ("call.updated", "signal.frame"):
        registry.bus.subscribe(topic, lambda t, e: events.append((t, e)))
    return App(registry, FakeHttpClient(host.site), calls, tokens, events)
