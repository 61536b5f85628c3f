"""Clients that set themselves up, against the real daemon on every engine: the Thunderbird
autoconfig, Outlook's Autodiscover and the Apple profile describe exactly the listeners that run,
a client logging in with those settings gets in, and none of them tells whether an account exists.
The MTA-STS policy is served to ``Host: mta-sts.DOMAIN`` as ``tau check`` prints it."""

from __future__ import annotations

import imaplib
import json
import plistlib
import shutil
import smtplib
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import defusedxml.ElementTree as SafeET
import pytest

from tests.support.daemon import TauDaemon
from tests.support.databases import daemon_database_url, engines

pytestmark = pytest.mark.e2e

ALICE = "alice@example.test"
PASSWORD = "secret-Pa55"
LISTENERS = ("submission", "submissions", "imap", "imaps", "http")
#: listener -> (what the formats call the protocol, TLS mode)
EXPECTED = {"imaps": ("imap", "SSL"), "imap": ("imap", "STARTTLS"),
            "submissions": ("smtp", "SSL"), "submission": ("smtp", "STARTTLS")}
AUTODISCOVER_NS = "{http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a}"


@pytest.fixture(scope="module", params=engines())
def daemon(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TauDaemon]:
    url = daemon_database_url(request)
    d = TauDaemon(tmp_path_factory.mktemp(f"autosetup-{request.param}"), database_url=url, listeners=LISTENERS)
    d.env["TAU_TAU_PUBLIC_URL"] = d.url
    d.init()
    d.add_user(ALICE)
    d.start()
    yield d
    d.stop()


def expected_servers(daemon: TauDaemon) -> set[tuple[str, str, int, str]]:
    return {(kind, "127.0.0.1", daemon.ports[name], tls) for name, (kind, tls) in EXPECTED.items()}


def autoconfig(daemon: TauDaemon, address: str = ALICE) -> bytes:
    status, headers, body = daemon.http("GET", "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress="
                                        + quote(address))
    assert status == 200, body
    assert headers["content-type"].startswith("application/xml")
    return body


def servers_in(xml: bytes) -> list[dict[str, str]]:
    root = SafeET.fromstring(xml)
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    provider = root.find("emailProvider")
    assert provider is not None and provider.findtext("domain") == "example.test"
    out = []
    for tag in ("incomingServer", "outgoingServer"):
        for node in provider.findall(tag):
            out.append({"type": node.get("type", ""), **{child.tag: child.text or "" for child in node}})
    return out


def test_autoconfig_lists_exactly_the_configured_listeners(daemon: TauDaemon) -> None:
    found = {(s["type"], s["hostname"], int(s["port"]), s["socketType"]) for s in servers_in(autoconfig(daemon))}
    assert found == expected_servers(daemon)


def test_autoconfig_points_calendars_at_public_url(daemon: TauDaemon) -> None:
    root = SafeET.fromstring(autoconfig(daemon))
    calendar = root.find("calendar")
    assert calendar is not None and calendar.get("type") == "caldav"
    assert calendar.findtext("serverURL") == daemon.url + "/dav/"
    assert calendar.findtext("username") == "%EMAILADDRESS%"


def _login_imap(server: dict[str, str], username: str) -> None:
    context = ssl._create_unverified_context()  # the self-signed certificate `tau init` made
    port = int(server["port"])
    if server["socketType"] == "SSL":
        client: imaplib.IMAP4 = imaplib.IMAP4_SSL(server["hostname"], port, ssl_context=context, timeout=10)
    else:
        client = imaplib.IMAP4(server["hostname"], port, timeout=10)
        client.starttls(context)
    assert client.login(username, PASSWORD)[0] == "OK"
    client.logout()


def _login_smtp(server: dict[str, str], username: str) -> None:
    context = ssl._create_unverified_context()
    port = int(server["port"])
    if server["socketType"] == "SSL":
        client: smtplib.SMTP = smtplib.SMTP_SSL(server["hostname"], port, context=context, timeout=10)
    else:
        client = smtplib.SMTP(server["hostname"], port, timeout=10)
        client.starttls(context=context)
    assert client.login(username, PASSWORD)[0] == 235
    client.quit()


def test_a_client_logs_in_with_exactly_the_autoconfig_settings(daemon: TauDaemon) -> None:
    servers = servers_in(autoconfig(daemon))
    assert servers
    for server in servers:
        assert server["authentication"] == "password-cleartext"
        username = server["username"].replace("%EMAILADDRESS%", ALICE)
        (_login_imap if server["type"] == "imap" else _login_smtp)(server, username)


def test_autoconfig_is_the_same_for_an_unknown_user_and_by_host(daemon: TauDaemon) -> None:
    known = autoconfig(daemon)
    assert autoconfig(daemon, "nobody-here@example.test") == known
    status, _, by_host = daemon.http("GET", "/mail/config-v1.1.xml", headers={"Host": "autoconfig.example.test"})
    assert (status, by_host) == (200, known)


def _json_error(daemon: TauDaemon, method: str, path: str, status: int, error: str, **kwargs: Any) -> None:
    code, headers, body = daemon.http(method, path, **kwargs)
    assert code == status, body
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body)["error"] == error


def test_an_unknown_domain_is_404_everywhere(daemon: TauDaemon) -> None:
    for path in ("/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=a%40elsewhere.test",
                 "/autodiscover/autodiscover.xml?emailaddress=a%40elsewhere.test",
                 "/mobileconfig?emailaddress=a%40elsewhere.test"):
        _json_error(daemon, "GET", path, 404, "unknown_domain")
    _json_error(daemon, "GET", "/mail/config-v1.1.xml", 404, "unknown_domain",
                headers={"Host": "autoconfig.elsewhere.test"})


def autodiscover_request(address: str) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<Autodiscover xmlns="http://schemas.microsoft.com/'
            f'exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>{address}</EMailAddress>'
            f"<AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/"
            f"responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>").encode()


def protocols(body: bytes) -> list[dict[str, str]]:
    root = SafeET.fromstring(body)
    account = root.find(f"{AUTODISCOVER_NS}Response/{AUTODISCOVER_NS}Account")
    assert account is not None and account.findtext(f"{AUTODISCOVER_NS}Action") == "settings"
    return [{child.tag.replace(AUTODISCOVER_NS, ""): child.text or "" for child in node}
            for node in account.findall(f"{AUTODISCOVER_NS}Protocol")]


def test_autodiscover_pox_matches_the_listeners(daemon: TauDaemon) -> None:
    for path in ("/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"):
        status, headers, body = daemon.http("POST", path, autodiscover_request(ALICE),
                                            {"Content-Type": "text/xml"})
        assert status == 200, body
        found = {(p["Type"].lower(), p["Server"], int(p["Port"]), "SSL" if p["Encryption"] == "SSL" else "STARTTLS")
                 for p in protocols(body)}
        assert found == expected_servers(daemon)
        assert {p["LoginName"] for p in protocols(body)} == {ALICE}


def test_autodiscover_does_not_tell_whether_the_user_exists(daemon: TauDaemon) -> None:
    stranger = "nobody-here@example.test"
    _, _, known = daemon.http("POST", "/autodiscover/autodiscover.xml", autodiscover_request(ALICE))
    _, _, unknown = daemon.http("POST", "/autodiscover/autodiscover.xml", autodiscover_request(stranger))
    assert unknown == known.replace(ALICE.encode(), stranger.encode())


def test_autodiscover_by_get_matches_the_post_answer(daemon: TauDaemon) -> None:
    _, _, posted = daemon.http("POST", "/autodiscover/autodiscover.xml", autodiscover_request(ALICE))
    status, _, got = daemon.http("GET", "/autodiscover/autodiscover.xml?emailaddress=" + quote(ALICE))
    assert (status, got) == (200, posted)


def test_autodiscover_for_activesync_answers_error_600(daemon: TauDaemon) -> None:
    """tau speaks no ActiveSync: the client is told so (and falls back to IMAP settings)."""
    body = autodiscover_request(ALICE).replace(b"outlook/responseschema/2006a", b"mobilesync/responseschema/2006")
    status, _, answer = daemon.http("POST", "/autodiscover/autodiscover.xml", body)
    assert status == 200
    ns = "{http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006}"
    assert SafeET.fromstring(answer).findtext(f"{ns}Response/{ns}Error/{ns}ErrorCode") == "600"


def test_autodiscover_refuses_what_is_not_xml(daemon: TauDaemon) -> None:
    _json_error(daemon, "POST", "/autodiscover/autodiscover.xml", 400, "invalid_xml", body=b"<Autodiscover")


def _unsigned(daemon: TauDaemon, signed: bytes, folder: Path) -> bytes:
    """The profile inside the CMS signature, verified against the daemon's TLS certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    (folder / "profile.der").write_bytes(signed)
    result = subprocess.run(["openssl", "cms", "-verify", "-inform", "DER", "-in", str(folder / "profile.der"),
                             "-CAfile", str(daemon.data / "tls" / "cert.pem"), "-purpose", "any"],
                            capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def test_apple_profile_is_signed_and_names_every_account(daemon: TauDaemon, tmp_path: Path) -> None:
    status, headers, body = daemon.http("GET", "/mobileconfig?emailaddress=" + quote(ALICE))
    assert status == 200, body
    assert headers["content-type"] == "application/x-apple-aspen-config"
    profile = plistlib.loads(_unsigned(daemon, body, tmp_path))
    assert profile["PayloadType"] == "Configuration"
    payloads = {p["PayloadType"]: p for p in profile["PayloadContent"]}
    mail = payloads["com.apple.mail.managed"]
    assert (mail["EmailAddress"], mail["IncomingMailServerUsername"]) == (ALICE, ALICE)
    assert (mail["IncomingMailServerHostName"], mail["IncomingMailServerPortNumber"]) == (
        "127.0.0.1", daemon.ports["imaps"])
    assert mail["OutgoingMailServerPortNumber"] == daemon.ports["submissions"]
    caldav = payloads["com.apple.caldav.account"]
    assert (caldav["CalDAVHostName"], caldav["CalDAVPort"], caldav["CalDAVUseSSL"]) == (
        "127.0.0.1", daemon.ports["http"], False)
    assert caldav["CalDAVPrincipalURL"] == f"{daemon.url}/dav/principals/{ALICE}/"


def test_apple_profile_needs_an_address(daemon: TauDaemon) -> None:
    _json_error(daemon, "GET", "/mobileconfig", 400, "invalid_address")


def test_mta_sts_policy_is_served_by_host_as_tau_check_prints_it(daemon: TauDaemon) -> None:
    status, headers, body = daemon.http("GET", "/.well-known/mta-sts.txt", headers={"Host": "mta-sts.example.test"})
    assert status == 200 and headers["content-type"].startswith("text/plain")
    from tau.mail.outbound.mtasts import parse_policy

    policy = parse_policy(body.decode(), "x", 0.0)
    assert policy is not None and policy.enforce and policy.mx == ("localhost",)
    printed = daemon.cli("check").stdout.decode()
    assert f"ok    links     {daemon.url} answers (HTTP 200)" in printed
    assert all(f"    {line}" in printed for line in body.decode().splitlines())
    for host in ("mta-sts.elsewhere.test", "example.test", "127.0.0.1"):
        code, _, _ = daemon.http("GET", "/.well-known/mta-sts.txt", headers={"Host": host})
        assert code == 404, host
