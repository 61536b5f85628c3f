"""The ``[limits]`` keys of issue 13 item 7: defaults, environment overrides and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from tau.app.connlimit import ConnectionCaps, auto_total
from tau.config import ConfigError, load_config, render_ini


def config(tmp_path: Path, environ: dict[str, str] | None = None):
    path = tmp_path / "tau.ini"
    path.write_text(render_ini({}))
    return load_config(str(path), environ=environ or {})


def test_defaults_trust_loopback_and_cap_per_protocol(tmp_path: Path) -> None:
    caps = ConnectionCaps.from_config(config(tmp_path))
    assert caps.per_ip == {"smtp": 50, "imap": 50, "http": 100}
    assert caps.is_trusted("127.0.0.1") and caps.is_trusted("127.8.9.10") and caps.is_trusted("::1")
    assert caps.is_trusted("::ffff:127.0.0.1") and not caps.is_trusted("192.0.2.1")
    assert caps.total == auto_total() > 0


def test_environment_overrides_and_bad_networks_are_refused(tmp_path: Path) -> None:
    cfg = config(tmp_path, {"TAU_LIMITS_TRUSTED_NETWORKS": "10.0.0.0/8, 2001:db8::/32",
                            "TAU_LIMITS_CONNECTIONS_TOTAL": "500"})
    caps = ConnectionCaps.from_config(cfg)
    assert caps.total == 500 and caps.is_trusted("2001:db8::5") and not caps.is_trusted("127.0.0.1")
    with pytest.raises(ConfigError, match="trusted_networks"):
        config(tmp_path, {"TAU_LIMITS_TRUSTED_NETWORKS": "10.0.0.0/8, evil.example"})
    with pytest.raises(ConfigError, match="password_hashes"):
        config(tmp_path, {"TAU_LIMITS_PASSWORD_HASHES": "0"})
