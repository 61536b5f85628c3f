"""Mail → chat (``POST /api/emails/{id}/chat``), in-process on SQLite and PostgreSQL (issue 20):
the answer says plainly that the conversation it opens is not end-to-end encrypted, names the
users' encrypted conversation when they have one, and never writes the mail into that one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.harness import add_user, make_registry
from tests.support.http import FakeHttpClient
from tests.support.mail_api import ALICE, BOB, PASSWORD, Host, Mail


class ChatMail(Mail):
    """Mail's REST world plus the messenger and the flows on the same site."""

    def __init__(self, registry: Any) -> None:
        from tau.flows import service as flows_service
        from tau.http import service as http_service
        from tau.mail import api_service
        from tau.messenger import service as messenger_service

        self.registry = registry
        host = Host(registry)
        for service in (http_service, api_service, messenger_service, flows_service):
            service.install(registry, host)
        self.client = FakeHttpClient(host.http.site)
        self.store = registry.mail_store
        add_user(registry, ALICE, PASSWORD)
        add_user(registry, BOB, PASSWORD)


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Any:
    registry = make_registry(tmp_path / "tau", db_url, limits={"requests_per_minute_ip": "0",
                                                               "requests_per_hour_user": "0"})
    yield ChatMail(registry)
    registry.db.close()


def test_mail_to_chat_says_the_conversation_is_not_end_to_end_encrypted(world: ChatMail) -> None:
    world.send(to=[BOB], subject="quarterly numbers", text="the secret figures")
    [item] = world.items(BOB)
    opened = world.api("POST", f"/api/emails/{item['id']}/chat", {}, user=BOB)
    assert opened.status == 201, opened.body
    answer = opened.json()
    assert answer["end_to_end_encrypted"] is False and answer["conversation"]["encrypted"] is False
    assert "not end-to-end encrypted" in answer["warning"] and answer["encrypted_conversation"] is None


def test_mail_to_chat_names_the_existing_encrypted_conversation_and_leaves_it_alone(world: ChatMail) -> None:
    e2e = world.api("POST", "/api/conversations", {"kind": "direct", "members": [ALICE], "encrypted": True},
                    user=BOB).json()
    world.send(to=[BOB], subject="quarterly numbers", text="the secret figures")
    [item] = world.items(BOB)
    answer = world.api("POST", f"/api/emails/{item['id']}/chat", {}, user=BOB).json()
    assert answer["encrypted_conversation"] == str(e2e["id"]) and answer["conversation"]["id"] != e2e["id"]
    assert str(e2e["id"]) in answer["warning"]
    # nothing of the mail went into the end-to-end conversation
    history = world.api("GET", f"/api/messages?conversation={e2e['id']}", user=ALICE).json()["items"]
    assert history == []
