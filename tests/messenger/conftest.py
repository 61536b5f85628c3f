"""An in-process messenger: the real HTTP site and routes on a fake reactor, three users with tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tau.auth.scopes import FULL as FULL_SCOPE
from tau.client.device import DeviceState
from tau.http.service import HttpHost
from tests.support.harness import add_user
from tests.support.http import FakeHttpClient


@dataclass
class App:
    registry: Any
    http: FakeHttpClient
    messenger: Any
    hub: Any
    tokens: dict[str, str]

    def call(self, who: str, method: str, path: str, body: Any = None):
        if body is None:
            return self.http.request(method, path, token=self.tokens[who])
        return self.http.post_json(path, body, method=method, token=self.tokens[who])

    def register(self, who: str, device_id: int, one_time: int = 5) -> DeviceState:
        state = DeviceState(f"{who}@example.test", device_id)
        answer = self.call(who, "PUT", "/api/keys", state.upload(one_time))
        assert answer.status == 200, answer.body
        return state


@pytest.fixture
def app(registry) -> App:
    from tau.messenger import api
    from tau.messenger.service import build

    host = HttpHost(registry)
    messenger, hub, resource = build(registry)
    api.register(host, messenger)
    host.mount("/ws/messages", resource)
    tokens = {}
    for name in ("alice", "bob", "carol"):
        add_user(registry, f"{name}@example.test")
        tokens[name] = registry.tokens.issue(f"{name}@example.test", scope=FULL_SCOPE)
    return App(registry, FakeHttpClient(host.site), messenger, hub, tokens)


@pytest.fixture
def events(registry) -> list[tuple[str, dict]]:
    seen: list[tuple[str, dict]] = []
    for topic in ("message.created", "message.receipt", "message.typing", "message.conversation",
                  "presence.changed", "keys.low"):
        registry.bus.subscribe(topic, lambda t, e: seen.append((t, e)))
    return seen

