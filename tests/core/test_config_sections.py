"""Typed config sections (issue 14 item 10): ``config.<section>.<key>``, frozen, one source with SCHEMA."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tau.config import SCHEMA, SECTIONS, Config, ConfigError, LimitsSection, load_config


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "tau.ini"
    path.write_text(text)
    return str(path)


def test_every_section_is_a_typed_frozen_attribute(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""), environ={})
    assert list(SECTIONS) == list(SCHEMA)
    for name, cls in SECTIONS.items():
        section = getattr(config, name)
        assert type(section) is cls
        assert [f.name for f in dataclasses.fields(section)] == list(SCHEMA[name])
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.limits.quota_bytes = 1  # type: ignore[misc]


def test_defaults_are_typed_values(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""), environ={})
    assert config.limits.quota_bytes == 10 * 1024**3
    assert config.database.pool_max == 8
    assert config.tau.domains == ()
    assert config.limits.trusted_networks == ("127.0.0.0/8", "::1")
    assert config.blobs.s3_secure is True
    assert config.listen.http == "" and config.listen.endpoint("http") == ""
    assert Config(path=config.path) == config


def test_file_and_environment_reach_the_typed_fields(tmp_path: Path) -> None:
    path = write(tmp_path, "[tau]\ndomains = a.test, b.test\n[limits]\nmessage_size = 1_048_576\n")
    config = load_config(path, environ={"TAU_TAU_PUBLIC_URL": "https://mail.example.test",
                                        "TAU_DKIM_SIGN": "off"})
    assert config.tau.domains == ("a.test", "b.test")
    assert config.limits.message_size == 1048576
    assert config.tau.public_url == "https://mail.example.test"
    assert config.dkim.sign is False


def test_a_bad_value_is_refused_at_load_naming_section_and_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "[database]\npool_max = 0\n"), environ={})
    assert (caught.value.section, caught.value.key) == ("database", "pool_max")
    assert "at least 1" in str(caught.value)


def test_a_section_is_replaced_whole_and_stays_typed(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[tau]\ndomains = a.test\n"), environ={})
    assert config.tau.domains == ("a.test",)
    config.limits = dataclasses.replace(config.limits, quota_bytes=2000)
    assert config.limits.quota_bytes == 2000 and isinstance(config.limits, LimitsSection)
    assert not hasattr(config, "get")          # no string lookups: config.<section>.<key> only
    with pytest.raises(KeyError):
        config.listen.endpoint("nope")
