"""Outbound pieces without a network: queue claiming/leases/recording on both engines, routing
(MX order, implicit MX, null MX RFC 7505, NXDOMAIN), MTA-STS parsing (RFC 8461), DSNs (RFC 3464),
dot-stuffing (RFC 5321 §4.5.2)."""

from __future__ import annotations

import email
import time
from typing import Any

import pytest
from twisted.internet import defer

from tau.mail.outbound import dsn, mtasts
from tau.mail.outbound.client import _stuff
from tau.mail.outbound.dns import DNSTempError, NoSuchDomain
from tau.mail.outbound.transfer import Permanent, Settings, Temporary, Transfer
from tau.mail.store import queue as rows
from tests.support.harness import add_user, resolve

ALICE = "alice@example.test"


def run(coro: Any) -> Any:
    return resolve(defer.ensureDeferred(coro))


def enqueue(registry: Any, rcpts: list[str], message_id: str = "<m@example.test>") -> int:
    from tau.mail.store import MailStore

    store = MailStore(registry)
    key = resolve(registry.blobs.put(b"Subject: x\r\n\r\nbody\r\n")).key
    return resolve(store.enqueue_outbound(ALICE, ALICE, rcpts, key, 21, message_id))


def test_claim_lease_reclaim_and_record(registry):
    add_user(registry, ALICE)
    db = registry.db.sync
    qid = enqueue(registry, ["a@remote.test", "b@other.test"])
    now = int(time.time())
    [row] = db.run("claim", rows.claim, now, 10, 60)
    assert row.id == qid and row.pending() == ["a@remote.test", "b@other.test"]
    assert db.run("claim", rows.claim, now, 10, 60) == []                 # leased: nobody else takes it
    assert db.run("reclaim", rows.reclaim, now + 30) == 0                  # lease still valid
    assert db.run("reclaim", rows.reclaim, now + 61) == 1                  # worker died: back to queued
    [row] = db.run("claim", rows.claim, now + 61, 10, 60)
    result = rows.Result(row, {"a@remote.test": ["sent", 250, "ok", "mx"], "b@other.test": ["retry", 451, "later", ""]},
                         next_attempt_at=now + 1000)
    assert db.run("record", rows.record, result, now) == []
    assert db.run("claim", rows.claim, now + 100, 10, 60) == []            # not due yet
    [row] = db.run("claim", rows.claim, now + 1000, 10, 60)
    assert row.pending() == ["b@other.test"] and row.attempts == 1
    assert db.run("sent", rows.already_sent, "<m@example.test>", ["A@remote.test".lower(), "b@other.test"]) == {
        "a@remote.test"}
    result = rows.Result(row, {"b@other.test": ["failed", 550, "5.1.1 no", ""]})
    keys = db.run("record", rows.record, result, now)
    assert keys == [] or len(keys) == 1                                  # the blob ref is released
    [state] = db.run("q", rows.list_queue)
    assert state.status == "sent" and state.rcpt_state["b@other.test"][0] == "failed"


def test_a_second_row_with_the_same_message_id_skips_who_has_it(registry):
    add_user(registry, ALICE)
    db = registry.db.sync
    enqueue(registry, ["a@remote.test"], "<dup@example.test>")
    [row] = db.run("claim", rows.claim, int(time.time()), 10, 60)
    db.run("record", rows.record, rows.Result(row, {"a@remote.test": ["sent", 250, "ok", ""]}), int(time.time()))
    enqueue(registry, ["a@remote.test", "c@remote.test"], "<dup@example.test>")
    [row] = db.run("claim", rows.claim, int(time.time()), 10, 60)
    assert db.run("sent", rows.already_sent, row.message_key, row.pending()) == {"a@remote.test"}


class FakeDNS:
    def __init__(self, mx: Any, addresses: dict[str, list[str]] | None = None) -> None:
        self._mx = mx
        self._addresses = addresses or {}

    async def mx(self, domain: str) -> Any:
        if isinstance(self._mx, Exception):
            raise self._mx
        return self._mx

    async def addresses(self, host: str) -> list[str]:
        return self._addresses.get(host, [])

    async def txt_or_empty(self, name: str) -> list[str]:
        return []


def routes(mx: Any) -> Any:
    t = Transfer(None, FakeDNS(mx), None, Settings(helo="me.test"))
    return run(t.routes("dest.test"))


def test_routing():
    hosts, verify = routes([(20, "b.dest.test"), (10, "a.dest.test")])
    assert hosts == ["a.dest.test", "b.dest.test"] and not verify
    assert routes([]) == (["dest.test"], False)                                  # implicit MX (RFC 5321 §5.1)
    with pytest.raises(Permanent) as null:
        routes([(0, "")])
    assert null.value.code == 556 and null.value.text.startswith("5.1.10")        # RFC 7505 §4.2
    with pytest.raises(Permanent):
        routes(NoSuchDomain("dest.test"))
    with pytest.raises(Temporary):
        routes(DNSTempError("dest.test"))


def test_mta_sts_parsing():
    assert mtasts.parse_txt(["v=STSv1; id=20190429T010101;"]) == "20190429T010101"
    assert mtasts.parse_txt(["v=STSv1; id=1", "v=STSv1; id=2"]) is None           # §3.1: exactly one
    policy = mtasts.parse_policy("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\n"
                                 "max_age: 604800\r\n", "1", 1700000000)
    assert policy is not None and policy.enforce
    assert policy.allows("mail.example.com") and policy.allows("mx1.example.net")
    assert not policy.allows("a.b.example.net") and not policy.allows("example.net")
    assert mtasts.parse_policy("version: STSv1\nmode: enforce\nmax_age: 1\n", "1", 1700000000) is None   # no mx
    assert mtasts.parse_policy("version: STSv2\nmode: none\nmax_age: 1\n", "1", 1700000000) is None


def test_dsn_is_a_delivery_status_report():
    raw = dsn.build("mx.example.test", ALICE, [("bob@remote.test", 550, "5.1.1 no such user", "mx.remote.test")],
                    b"Subject: hi\r\nMessage-ID: <x@y>\r\n", arrival=1700000000, now=1700000000)
    msg = email.message_from_bytes(raw)
    assert msg["To"] == f"<{ALICE}>" and msg["Auto-Submitted"] == "auto-replied"
    assert msg.get_content_type() == "multipart/report" and msg.get_param("report-type") == "delivery-status"
    text = raw.decode()
    for line in ("Reporting-MTA: dns; mx.example.test", "Final-Recipient: rfc822; bob@remote.test",
                 "Action: failed", "Status: 5.1.1", "Remote-MTA: dns; mx.remote.test",
                 "Diagnostic-Code: smtp; 550 5.1.1 no such user", "Message-ID: <x@y>"):
        assert line in text, line
    delayed = dsn.build("h", ALICE, [("b@r.test", 451, "4.4.1 timeout", "")], b"", action="delayed",
                        retry_until=1700000000 + 5 * 86400, now=1700000000).decode()
    assert "Action: delayed" in delayed and "Status: 4.4.1" in delayed and "Will-Retry-Until:" in delayed
    assert dsn.status_code(421, "busy") == "4.0.0"


def test_dot_stuffing():
    assert _stuff(b".hidden\r\nline\r\n.x\r\n", True) == b"..hidden\r\nline\r\n..x\r\n"
    assert _stuff(b".not at line start\r\n", False) == b".not at line start\r\n"
