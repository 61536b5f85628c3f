"""SPF (RFC 7208), DMARC (RFC 7489), DKIM (RFC 6376/8463) and Authentication-Results (RFC 8601),
evaluated against an in-memory DNS (no reactor, no sockets)."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import defer

from tau.mail.outbound.dns import DNSTempError, NoSuchDomain
from tau.mail.trust import dkim, dmarc, spf
from tau.mail.trust.inbound import insert_headers
from tau.mail.trust.signer import from_domain, pick_domain
from tests.support.harness import resolve


class FakeDNS:
    def __init__(self, records: dict[tuple[str, str], Any]) -> None:
        self.records = records
        self.queries = 0

    async def _get(self, name: str, kind: str) -> Any:
        self.queries += 1
        value = self.records.get((name.lower(), kind))
        if value == "SERVFAIL":
            raise DNSTempError(name)
        if value is None:
            if any(n == name.lower() for n, _ in self.records):
                return []
            raise NoSuchDomain(name)
        return value

    async def txt(self, name: str) -> list[str]:
        return await self._get(name, "TXT")

    async def txt_or_empty(self, name: str) -> list[str]:
        try:
            return await self.txt(name)
        except NoSuchDomain:
            return []

    async def mx(self, name: str) -> list[tuple[int, str]]:
        return await self._get(name, "MX")

    async def a(self, name: str, ipv6: bool = False) -> list[str]:
        return await self._get(name, "AAAA" if ipv6 else "A")


def run(coro: Any) -> Any:
    return resolve(defer.ensureDeferred(coro))


ZONE = {
    ("ex.test", "TXT"): ["v=spf1 ip4:192.0.2.0/24 include:inc.test mx a:host.ex.test -all", "unrelated"],
    ("inc.test", "TXT"): ["v=spf1 ip6:2001:db8::/32 ~all"],
    ("ex.test", "MX"): [(10, "mx.ex.test")],
    ("mx.ex.test", "A"): ["198.51.100.7"],
    ("host.ex.test", "A"): ["203.0.113.9"],
    ("soft.test", "TXT"): ["v=spf1 ?a ~all"],
    ("soft.test", "A"): ["192.0.2.200"],
    ("redir.test", "TXT"): ["v=spf1 redirect=ex.test"],
    ("two.test", "TXT"): ["v=spf1 -all", "v=spf1 +all"],
    ("loop.test", "TXT"): ["v=spf1 include:loop.test"],
    ("macro.test", "TXT"): ["v=spf1 exists:%{l}.%{d}.allow.test -all"],
    ("bob.macro.test.allow.test", "A"): ["127.0.0.2"],
    ("temp.test", "TXT"): "SERVFAIL",
    ("bad.test", "TXT"): ["v=spf1 frobnicate -all"],
}


@pytest.mark.parametrize("ip, sender, expected", [
    ("192.0.2.55", "a@ex.test", "pass"),                 # ip4 with CIDR
    ("2001:db8::1", "a@ex.test", "pass"),                 # include: that record passes
    ("2001:db9::1", "a@ex.test", "fail"),                 # include's ~all is "no match" → -all
    ("198.51.100.7", "a@ex.test", "pass"),                # mx
    ("203.0.113.9", "a@ex.test", "pass"),                 # a:host
    ("203.0.113.10", "a@ex.test", "fail"),
    ("192.0.2.200", "x@soft.test", "neutral"),
    ("192.0.2.201", "x@soft.test", "softfail"),
    ("192.0.2.55", "a@redir.test", "pass"),               # redirect=
    ("192.0.2.55", "a@two.test", "permerror"),            # two records (§4.5)
    ("192.0.2.55", "a@loop.test", "permerror"),           # lookup limit (§4.6.4)
    ("192.0.2.55", "bob@macro.test", "pass"),             # macros (§7)
    ("192.0.2.55", "eve@macro.test", "fail"),
    ("192.0.2.55", "a@temp.test", "temperror"),
    ("192.0.2.55", "a@nowhere.test", "none"),
    ("192.0.2.55", "a@bad.test", "permerror"),
])
def test_spf(ip, sender, expected):
    assert run(spf.check_host(FakeDNS(ZONE), ip, sender, "helo.test")) == (expected, sender.split("@")[1])


def test_spf_null_sender_uses_helo():
    assert run(spf.check_host(FakeDNS(ZONE), "192.0.2.9", "", "ex.test")) == ("pass", "ex.test")


DMARC_ZONE = {
    ("_dmarc.shop.test", "TXT"): ["v=DMARC1; p=reject; adkim=s"],
    ("_dmarc.q.test", "TXT"): ["v=DMARC1; p=quarantine; pct=100"],
    ("_dmarc.org.test", "TXT"): ["v=DMARC1; p=none; sp=reject"],
    ("_dmarc.bad.test", "TXT"): ["v=DMARC1; p=sometimes"],
    ("_dmarc.temp.test", "TXT"): "SERVFAIL",
}


def dk(result: str, domain: str) -> dkim.DkimResult:
    return dkim.DkimResult(result, domain, "s", "rsa-sha256")


@pytest.mark.parametrize("from_domain_, spf_, dkim_, expected", [
    ("shop.test", ("pass", "shop.test"), [], ("pass", "none")),                 # SPF aligned
    ("shop.test", ("pass", "bounce.shop.test"), [], ("pass", "none")),          # relaxed SPF
    ("shop.test", ("pass", "other.test"), [dk("pass", "mail.shop.test")], ("fail", "reject")),  # adkim=s
    ("shop.test", ("fail", "shop.test"), [dk("pass", "shop.test")], ("pass", "none")),
    ("q.test", ("pass", "other.test"), [], ("fail", "quarantine")),
    ("sub.org.test", ("none", ""), [], ("fail", "reject")),                     # sp= at the org domain
    ("org.test", ("none", ""), [], ("fail", "none")),
    ("bad.test", ("none", ""), [], ("none", "none")),                           # invalid p: no policy
    ("temp.test", ("none", ""), [], ("temperror", "none")),
    ("nothing.test", ("none", ""), [], ("none", "none")),
])
def test_dmarc(from_domain_, spf_, dkim_, expected):
    got = run(dmarc.evaluate(FakeDNS(DMARC_ZONE), from_domain_, spf_, dkim_, sample=0))
    assert (got.result, got.policy) == expected


def test_dmarc_pct_sampling_downgrades():
    zone = {("_dmarc.p.test", "TXT"): ["v=DMARC1; p=reject; pct=10"]}
    assert run(dmarc.evaluate(FakeDNS(zone), "p.test", ("none", ""), [], sample=50)).policy == "quarantine"
    assert run(dmarc.evaluate(FakeDNS(zone), "p.test", ("none", ""), [], sample=5)).policy == "reject"


def test_org_domain():
    assert dmarc.org_domain("a.b.example.com") == "example.com"
    assert dmarc.org_domain("mail.example.co.uk") == "example.co.uk"


def test_org_domain_follows_the_public_suffix_list():
    # suffixes a two-label guess gets wrong: wildcard/deep public suffixes and private sections
    assert dmarc.org_domain("a.b.c.kawasaki.jp") == "b.c.kawasaki.jp"
    assert dmarc.org_domain("mail.alice.github.io") == "alice.github.io"
    assert dmarc.org_domain("smtp.example.com.au.") == "example.com.au"
    # a name under no listed suffix falls back to the default rule "*": the last two labels
    assert dmarc.org_domain("x.org.test") == "org.test"


def test_relaxed_alignment_does_not_join_two_tenants_of_one_public_suffix():
    assert not dmarc.aligned("alice.github.io", "mallory.github.io", "r")
    assert dmarc.aligned("mail.alice.github.io", "alice.github.io", "r")


MESSAGE = (b"From: Alice <alice@example.test>\r\nTo: bob@remote.test\r\nSubject: signed\r\n"
           b"Date: Mon, 24 Nov 2025 10:00:00 +0000\r\nMessage-ID: <s@example.test>\r\n\r\nbody\r\n")


@pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
def test_dkim_sign_and_verify(tmp_path, algorithm):
    path, record = dkim.write_key(tmp_path, "example.test", "sel", algorithm)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    keys = dkim.load_keys(tmp_path)
    assert dkim.txt_record(algorithm, dkim.public_from_private(keys["example.test"][0])) == record
    signed = dkim.sign(MESSAGE, keys["example.test"]) + MESSAGE
    txt = {"sel._domainkey.example.test": [record]}
    [ok] = dkim.verify(signed, txt)
    assert (ok.result, ok.domain, ok.selector) == ("pass", "example.test", "sel")
    [bad] = dkim.verify(signed.replace(b"body", b"b0dy"), txt)
    assert bad.result == "fail"
    [temp] = dkim.verify(signed, {})
    assert temp.result == "temperror"
    with pytest.raises(FileExistsError):
        dkim.write_key(tmp_path, "example.test", "sel", algorithm)


def test_signing_domain_prefers_aligned_from():
    keys = {"example.test": [object()], "relay.test": [object()]}
    assert from_domain(MESSAGE) == "example.test"
    assert pick_domain(MESSAGE, "bounce@relay.test", keys) == "example.test"
    assert pick_domain(MESSAGE.replace(b"example.test>", b"other.test>"), "x@relay.test", keys) == "relay.test"
    assert pick_domain(b"From: a@x.test\r\nFrom: b@y.test\r\n\r\n", "x@none.test", keys) is None


def test_authentication_results_go_after_our_trace_and_forgeries_go():
    raw = (b"Return-Path: <a@b.test>\r\nReceived: from x\r\n\tby localhost; date\r\n"
           b"Authentication-Results: localhost; dkim=pass header.d=bank.test\r\n"
           b"Authentication-Results: other.example; spf=pass\r\nSubject: s\r\n\r\nbody\r\n")
    out = insert_headers(raw, b"Authentication-Results: localhost;\r\n\tspf=pass\r\n", "localhost")
    assert out == (b"Return-Path: <a@b.test>\r\nReceived: from x\r\n\tby localhost; date\r\n"
                   b"Authentication-Results: localhost;\r\n\tspf=pass\r\n"
                   b"Authentication-Results: other.example; spf=pass\r\nSubject: s\r\n\r\nbody\r\n")
