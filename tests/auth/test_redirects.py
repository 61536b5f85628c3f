"""``tau.auth.redirects``: the strict redirect-URI parse agrees with browsers (WHATWG URL) on
everything it accepts, and refuses the inputs on which a browser and ``urlsplit`` disagree."""

from __future__ import annotations

import itertools
import random
from urllib.parse import urlsplit

import pytest

from tau.auth import redirects
from tau.auth.redirects import RedirectError, parse

ACCEPTED = [
    "http://127.0.0.1:5555/callback", "http://127.0.0.1/cb", "http://[::1]:8080/x?a=b", "http://[::1]/",
    "https://notes.example.org/oauth/done", "https://a.example/cb?x=1&y=%20z/?", "https://1.2.3.4:8443/cb",
    "https://xn--bcher-kva.example/cb", "https://[2001:db8::1]/cb", "https://app.example/a/b@c:d/%5C",
]

REFUSED = {
    "http://evil.example:1234\\@127.0.0.1/cb": "backslash",
    "http:/\\evil.example/cb": "backslash",
    "http://127.0.0.1:5555/cb#x": "fragment",
    "http://127.0.0.1:5555/cb#": "fragment",
    "http://evil.example@127.0.0.1:5555/cb": "userinfo",
    "http://u:p@127.0.0.1/cb": "userinfo",
    "http://evil.example%40127.0.0.1/cb": "host",
    "http://evil.example:1234%5C@127.0.0.1/cb": "userinfo",
    "http://%65vil.example/cb": "host",
    "http://127.0.0.1:5555/c b": "whitespace",
    "http://127.0.0.1:5555/cb\t": "whitespace",
    "http://127.0.0.1:5555/cb\r\nLocation: x": "whitespace",
    " http://127.0.0.1:5555/cb": "whitespace",
    "https://ex\u0430mple.org/cb": "non-ASCII",
    "https://ｅvil.example/cb": "non-ASCII",
    "HTTP://127.0.0.1:5555/cb": "canonical",
    "hTTps://app.example/cb": "canonical",
    "https://APP.example/cb": "canonical",
    "https://app.example:443/cb": "canonical",
    "http://127.0.0.1:80/cb": "canonical",
    "http://[0:0::1]:5555/cb": "IPv6",
    "http://[::1%25eth0]:5555/cb": "IPv6",
    "http://[::ffff:127.0.0.1]/cb": "IPv6",
    "http://127.1:5555/cb": "IPv4",
    "http://0x7f.0.0.1:5555/cb": "IPv4",
    "http://2130706433:5555/cb": "IPv4",
    "http://127.000.0.1:5555/cb": "IPv4",
    "https://app.example.123/cb": "IPv4",
    "http://127.0.0.1:05555/cb": "port",
    "http://127.0.0.1:/cb": "port",
    "http://127.0.0.1:99999/cb": "port",
    "http://127.0.0.1:5555": "path",
    "http://127.0.0.1:5555?x": "path",
    "http://127.0.0.1:5555/a/../cb": "segments",
    "http://127.0.0.1:5555/%2e%2E/cb": "segments",
    "http://127.0.0.1:5555/cb?": "query",
    "http://127.0.0.1:5555/cb?a='b'": "query",
    "http://127.0.0.1:5555/c<b>": "path",
    "http:evil.example/cb": "scheme://host",
    "http:///evil.example/cb": "host",
    "http://localhost:5555/cb": "http is allowed only",
    "http://127.0.0.1.evil.example:5555/cb": "http is allowed only",
    "http://evil.example/cb": "http is allowed only",
    "javascript://127.0.0.1/%0aalert(1)": "https",
    "data:text/html,<script>": "scheme://host",
    "": "empty",
    "https://app.example./cb": "host",
    "https://a..example/cb": "host",
    "https://-a.example/cb": "host",
    "https://a_b.example/cb": "host",
}


@pytest.mark.parametrize("uri", ACCEPTED)
def test_canonical_uris_are_accepted(uri: str) -> None:
    parsed = parse(uri)
    assert parsed.uri == uri == parsed.serialise()


@pytest.mark.parametrize(("uri", "reason"), REFUSED.items())
def test_ambiguous_or_non_canonical_uris_are_refused(uri: str, reason: str) -> None:
    with pytest.raises(RedirectError) as info:
        parse(uri)
    assert reason.lower() in str(info.value).lower()


def test_loopback_is_http_to_an_ip_literal_only() -> None:
    assert parse("http://127.0.0.1:1/x").loopback and parse("http://[::1]:65535/x").loopback
    assert not parse("https://127.0.0.1/x").loopback and not redirects.is_loopback("http://localhost:5/x")
    assert not redirects.is_loopback("http://evil.example:1234\\@127.0.0.1/cb")


def test_matching_is_exact_and_loopback_any_port_only_when_allowed() -> None:
    registered = ["https://app.example/cb?x=1"]
    assert redirects.allowed("https://app.example/cb?x=1", registered, loopback_any_port=False)
    for near in ("https://app.example/cb?x=2", "https://app.example/cb?x=1&", "https://app.example/Cb?x=1",
                 "https://app.example:443/cb?x=1", "https://app.example/cb/?x=1"):
        assert not redirects.allowed(near, registered, loopback_any_port=True), near
    assert redirects.allowed("http://127.0.0.1:49152/any", registered, loopback_any_port=True)
    assert not redirects.allowed("http://127.0.0.1:49152/any", registered, loopback_any_port=False)
    # a registered URI that is not canonical never matches (both sides pass the same parse)
    assert not redirects.allowed("HTTPS://app.example/cb", ["HTTPS://app.example/cb"], loopback_any_port=False)


# -- differential: whatever is accepted, a WHATWG parser (ada, as in browsers) reads identically --

SCHEMES = ["http://", "https://", "HTTP://", "http:/", "https:///", "http:\\\\", "http:"]
HOSTS = ["127.0.0.1", "[::1]", "evil.example", "127.0.0.1.evil.example", "EVIL.example", "127.1", "0x7f.0.0.1",
         "[::0:1]", "a@127.0.0.1", "evil.example\\@127.0.0.1", "%65vil.example", "xn--bcher-kva.example",
         "ex\tample.org", "1.2.3.4", "app.example.", "[::ffff:1.2.3.4]", "b\u00fccher.example", "a_b.example"]
PORTS = ["", ":5555", ":80", ":443", ":0", ":", ":05555", ":65536"]
PATHS = ["", "/", "/cb", "/a/../cb", "/%2e/", "/a b", "/\\evil", "/@x", "/?q=1", "/cb#f", "/%5C", "/|", "/c'b"]
QUERIES = ["", "?", "?a=b", "?a='b'", "?a=%zz", "?x=/\\y", "?a b", "?x=1&y=%41"]


def _corpus() -> list[str]:
    """Every combination (about 100,000), plus random splices of the tricky pieces."""
    rng = random.Random(13)
    pieces = SCHEMES + HOSTS + PORTS + PATHS + QUERIES
    spliced = ["http://127.0.0.1" + "".join(rng.choice(pieces) for _ in range(3)) for _ in range(5000)]
    return ["".join(parts) for parts in itertools.product(SCHEMES, HOSTS, PORTS, PATHS, QUERIES)] + spliced


def test_everything_accepted_is_read_the_same_by_a_browser_parser() -> None:
    ada_url = pytest.importorskip("ada_url")
    accepted = 0
    for uri in _corpus():
        try:
            parsed = parse(uri)
        except RedirectError:
            continue
        accepted += 1
        browser = ada_url.URL(uri)
        assert browser.href == uri, (uri, browser.href)
        assert browser.hostname == parsed.host and browser.protocol == parsed.scheme + ":", uri
        assert urlsplit(uri).hostname == parsed.host.strip("[]"), uri
    assert accepted > 100  # the corpus does exercise the accepting side


def test_the_attack_uri_goes_elsewhere_in_a_browser() -> None:
    """Why the backslash matters: the browser's host is not the one urlsplit sees."""
    ada_url = pytest.importorskip("ada_url")
    attack = "http://evil.example:1234\\@127.0.0.1/cb"
    assert urlsplit(attack).hostname == "127.0.0.1"
    assert ada_url.URL(attack).hostname == "evil.example"
