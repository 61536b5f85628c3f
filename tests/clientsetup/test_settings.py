"""What clients are told comes from the ``[listen]`` endpoints: their port, TLS mode and, for a
listener bound to loopback only, the address it is reachable at."""

from __future__ import annotations

from pathlib import Path

from tau.clientsetup.settings import client_settings
from tau.config import Config, load_config
from tau.config_sections import LISTENERS
from tau.net.endpoints import endpoint_address


def test_endpoint_addresses() -> None:
    assert endpoint_address("ssl:993") == ("ssl", 993, "")
    assert endpoint_address("tcp:10143:interface=127.0.0.1") == ("tcp", 10143, "127.0.0.1")
    assert endpoint_address("tcp:port=587:interface=\\:\\:1") == ("tcp", 587, "::1")
    assert endpoint_address("tcp6:143") == ("tcp6", 143, "")
    assert endpoint_address("unix:/run/tau.sock") == ("unix", None, "")


def _config(tmp_path: Path, **listen: str) -> Config:
    lines = "".join(f"{k} = {v}\n" for k, v in listen.items())
    ini = tmp_path / "tau.ini"
    ini.write_text(f"[tau]\nhostname = mail.example.test\ndata_dir = {tmp_path}\n[listen]\n{lines}")
    return load_config(str(ini), environ={})


def test_only_configured_listeners_are_offered_implicit_tls_first(tmp_path: Path) -> None:
    config = _config(tmp_path, imap="tcp:143", imaps="ssl:993", submission="tcp:587:interface=127.0.0.1")
    offered = [(s.listener, s.host, s.port, s.tls) for s in client_settings(config).servers]
    assert offered == [("imaps", "mail.example.test", 993, "SSL"), ("imap", "mail.example.test", 143, "STARTTLS"),
                       ("submission", "127.0.0.1", 587, "STARTTLS")]


def test_managesieve_is_offered_only_when_its_listener_is_configured(tmp_path: Path) -> None:
    config = _config(tmp_path, imaps="ssl:993")
    assert [s.protocol for s in client_settings(config).servers] == ["imap"]
    if "managesieve" in LISTENERS:  # once the ManageSieve service has its [listen] key
        config = _config(tmp_path, imaps="ssl:993", managesieve="tcp:4190")
        assert ("managesieve", 4190, "STARTTLS") in [(s.protocol, s.port, s.tls)
                                                       for s in client_settings(config).servers]
