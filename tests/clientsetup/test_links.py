"""Links that work: every URL tau hands out starts with ``[tau] public_url``, whatever Host header
the request that made it carried (a client picks that header; the link must open for everyone)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import defusedxml.ElementTree as SafeET
import pytest

from tests.support.suite import Suite, make_suite

PUBLIC = "https://links.example.test:8443"
ALICE, BOB = "alice@example.test", "bob@example.test"
HOSTILE = {"Host": "attacker.test"}


@pytest.fixture
def suite(tmp_path: Path, db_url: str) -> Suite:
    return make_suite(tmp_path / "tau", db_url, {ALICE: False, BOB: False}, tau={"public_url": PUBLIC + "/"})


def test_share_links_use_public_url(suite: Suite) -> None:
    token = suite.token(ALICE)
    upload = suite.request("POST", "/api/files?path=/report.txt", b"numbers", token=token, headers=HOSTILE)
    assert upload.status == 201, upload.body
    share = suite.client.post_json("/api/shares", {"file_id": upload.json()["id"]}, token=token, headers=HOSTILE)
    assert share.status == 201, share.body
    assert share.json()["url"] == f"{PUBLIC}/s/{share.json()['token']}"


def test_call_join_links_use_public_url(suite: Suite) -> None:
    call = suite.client.post_json("/api/calls", {"title": "standup", "participants": [BOB]},
                                  token=suite.token(ALICE), headers=HOSTILE)
    assert call.status == 201, call.body
    assert call.json()["join_url"] == f"{PUBLIC}/call/{call.json()['id']}"


def test_the_oauth_issuer_and_endpoints_use_public_url(suite: Suite) -> None:
    body = suite.get("/.well-known/openid-configuration", headers=HOSTILE).json()
    assert body["issuer"] == PUBLIC
    assert body["token_endpoint"] == PUBLIC + "/oauth2/token"


def test_client_setup_points_dav_at_public_url(suite: Suite) -> None:
    xml = suite.get("/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=" + ALICE, headers=HOSTILE)
    assert xml.status == 200, xml.body
    assert SafeET.fromstring(xml.body).findtext("calendar/serverURL") == PUBLIC + "/dav/"


def test_event_conference_links_use_public_url(suite: Suite) -> None:
    event: Any = suite.client.post_json("/api/events", {"summary": "review", "start": "2030-01-07T10:00:00Z",
                                                        "end": "2030-01-07T11:00:00Z", "conference": True},
                                        token=suite.token(ALICE), headers=HOSTILE)
    assert event.status == 201, event.body
    ics = suite.request("GET", event.json()["url"], token=suite.token(ALICE))
    assert ics.status == 200, ics.body
    assert f"{PUBLIC}/call/".encode() in ics.body.replace(b"\r\n ", b"")
