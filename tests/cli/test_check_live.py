"""``tau check`` as an operator runs it (a subprocess): the client discovery records it prints, and
with ``--live`` what the DNS server named by ``[outbound] resolver`` says about each of them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tau.clientsetup.settings import mta_sts_id
from tau.config import load_config
from tests.support.outbound import RemotePeer

TAU = str(Path(sys.executable).parent / "tau")
HOST = "mail.example.test"


def check(installed: Any, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TAU_")} | (env or {})
    return subprocess.run([TAU, "check", "--config", str(installed.config), *extra], capture_output=True,
                          text=True, env=environ, timeout=120)


def rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()]


def test_check_prints_the_client_discovery_records(installed: Any) -> None:
    out = check(installed).stdout
    found = rows(out)
    for service, port in (("_submission", 587), ("_submissions", 465), ("_imap", 143), ("_imaps", 993)):
        assert [f"{service}._tcp.example.test.", "SRV", "0", "1", str(port), f"{HOST}."] in found
    for service in ("_caldavs", "_carddavs", "_autodiscover"):
        assert [f"{service}._tcp.example.test.", "SRV", "0", "1", "8443", f"{HOST}."] in found
    for name in ("autoconfig", "autodiscover", "mta-sts"):
        assert [f"{name}.example.test.", "CNAME", f"{HOST}."] in found
    assert ["_smtp._tls.example.test.", "TXT", '"v=TLSRPTv1;', 'rua=mailto:postmaster@example.test"'] in found
    policy_id = mta_sts_id(load_config(str(installed.config)))
    assert ["_mta-sts.example.test.", "TXT", '"v=STSv1;', f'id={policy_id}"'] in found


def test_a_listener_that_is_off_is_published_as_not_offered(installed: Any) -> None:
    out = check(installed, env={"TAU_LISTEN_IMAP": ""}).stdout
    assert ["_imap._tcp.example.test.", "SRV", "0", "0", "0", "."] in rows(out)


@pytest.fixture
def dns_peer(installed: Any, tmp_path: Path) -> Iterator[RemotePeer]:
    policy_id = mta_sts_id(load_config(str(installed.config)))
    zone = {
        "example.test": [["MX", 10, HOST], ["TXT", "v=spf1 a mx ~all"]],    # MX right, SPF the operator's own
        "_mta-sts.example.test": [["TXT", f"v=STSv1; id={policy_id}"]],
        "mta-sts.example.test": [["CNAME", "elsewhere.test"]],                  # wrong target
        "_imaps._tcp.example.test": [["SRV", 0, 1, 993, HOST]],
        "_imap._tcp.example.test": [["SRV", 0, 1, 1143, HOST]],                 # wrong port
        "autoconfig.example.test": [["CNAME", HOST]],
        "autodiscover.example.test": [["A", "192.0.2.7"]],                      # same address as the host
        HOST: [["A", "192.0.2.7"]],
    }
    peer = RemotePeer(tmp_path / "peer", zone).start()
    yield peer
    peer.stop()


def live_lines(out: str) -> dict[str, tuple[str, str]]:
    found = {}
    for line in out.splitlines():
        m = re.match(r"^(ok|warn|FAIL)\s+dns\s+(\S+) (\w+): (.*)$", line)
        if m:
            found[f"{m.group(2)} {m.group(3)}"] = (m.group(1), m.group(4))
    return found


def test_live_says_which_records_are_there_missing_or_wrong(installed: Any, dns_peer: RemotePeer) -> None:
    result = check(installed, "--live", env={"TAU_OUTBOUND_RESOLVER": f"127.0.0.1:{dns_peer.dns_port}"})
    found = live_lines(result.stdout)
    assert found["example.test. MX"] == ("ok", "published")
    assert found["_mta-sts.example.test. TXT"] == ("ok", "published")
    assert found["_imaps._tcp.example.test. SRV"] == ("ok", "published")
    assert found["autoconfig.example.test. CNAME"] == ("ok", "published")
    assert found["autodiscover.example.test. CNAME"] == ("ok", "A record with the same address")
    assert found["example.test. TXT"][0] == "warn" and "v=spf1 a mx ~all" in found["example.test. TXT"][1]
    assert found["_dmarc.example.test. TXT"] == ("FAIL", "missing")
    assert found["_submission._tcp.example.test. SRV"] == ("FAIL", "missing")
    assert found["_imap._tcp.example.test. SRV"] == ("FAIL", f"wrong: 1143 {HOST}.")
    assert found["mta-sts.example.test. CNAME"] == ("FAIL", "wrong: CNAME elsewhere.test.")
    assert result.returncode == 1
    assert re.search(r"^\d+ checks failed$", result.stdout, re.M)


def test_without_live_nothing_is_looked_up(installed: Any) -> None:
    result = check(installed, env={"TAU_OUTBOUND_RESOLVER": "127.0.0.1:9"})
    assert not live_lines(result.stdout)
    assert result.returncode == 0, result.stdout
