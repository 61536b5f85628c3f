"""``tau check``: every check reported, DNS records printed, exit 1 when something failed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any


def status_of(out: str) -> dict[str, str]:
    found = {}
    for line in out.splitlines():
        m = re.match(r"^(ok|warn|FAIL)\s+(\w+)\s", line)
        if m:
            found[m.group(2)] = m.group(1)
    return found


def test_check_a_fresh_install(installed: Any) -> None:
    result = installed.run("check")
    assert result.code == 0, result.out + result.err
    assert status_of(result.out) == {"config": "ok", "database": "ok", "secret": "ok", "blobs": "ok",
                                     "tls": "ok", "listen": "ok", "links": "warn", "modes": "ok"}
    assert "https://mail.example.test:8443 does not answer" in result.out  # no daemon runs yet
    from tau.storage.migrate import code_version

    assert f"schema version {code_version()}" in result.out
    assert re.search(r"expires \d{4}-\d\d-\d\d \(in 82\d days\)", result.out)
    lines = [line.split() for line in result.out.splitlines()]
    assert ["example.test.", "MX", "10", "mail.example.test."] in lines
    assert ["example.test.", "TXT", '"v=spf1', "mx", '-all"'] in lines
    assert ["_dmarc.example.test.", "TXT", '"v=DMARC1;', 'p=quarantine"'] in lines
    assert "DKIM for example.test: run `tau dkim keygen example.test`" in result.out
    assert result.out.rstrip().endswith("all checks passed")


def test_check_lists_domains_added_later(installed: Any) -> None:
    installed.run("domain", "add", "second.test")
    assert "_dmarc.second.test." in installed.run("check").out


def test_check_reports_every_failure(installed: Any) -> None:
    (installed.data_dir / "tls" / "key.pem").unlink()
    (installed.data_dir / "blobs").rmdir()
    result = installed.run("check")
    assert result.code == 1
    found = status_of(result.out)
    assert (found["tls"], found["blobs"], found["database"]) == ("FAIL", "FAIL", "ok")
    assert "key.pem" in result.out
    assert result.out.rstrip().endswith("2 checks failed")


def test_check_with_unreachable_database(tau: Any, tmp_path: Path) -> None:
    ini = tmp_path / "tau.ini"
    ini.write_text(f"[tau]\ndata_dir = {tmp_path}\ndomains = example.test\n"
                   "[database]\nurl = postgresql://postgres@127.0.0.1:1/x\n")
    result = tau("check", "--config", str(ini))
    assert result.code == 1
    assert status_of(result.out)["database"] == "FAIL"
    assert "cannot connect" in result.out
    assert "_dmarc.example.test." in result.out  # DNS hints from [tau] domains still shown
    assert "Traceback" not in result.out + result.err
