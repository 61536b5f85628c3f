"""Issue 18 item 5, the INI side: sizes with units, the line of a syntax error, the closest known
key for a typo, and environment overrides blamed on the variable rather than the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tau.config import ConfigError, load_config, parse_size, render_ini


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "tau.ini"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(("text", "value"), [("1048576", 1048576), ("512K", 512 * 1024), ("50M", 50 * 1024**2),
                                             ("5G", 5 * 1024**3), ("1T", 1024**4), ("5 GiB", 5 * 1024**3),
                                             ("20mb", 20 * 1024**2), ("10_000", 10000), ("0", 0)])
def test_sizes_take_binary_units(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "5Q", "-1M", "1.5G", "G"])
def test_a_size_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="50M"):
        parse_size(text)


def test_every_byte_key_accepts_units(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[limits]\nmessage_size = 25M\nquota_bytes = 5G\nrequest_body = 512K\n"
                                         "[flows]\nattachment_link_threshold = 2M\n"), environ={})
    assert config.limits.message_size == 25 * 1024**2 and config.limits.quota_bytes == 5 * 1024**3
    assert config.limits.request_body == 512 * 1024 and config.flows.attachment_link_threshold == 2 * 1024**2


def test_the_reference_ini_writes_sizes_with_units(tmp_path: Path) -> None:
    text = render_ini({})
    assert "message_size = 50M" in text and "quota_bytes = 10G" in text
    assert load_config(write(tmp_path, text), environ={}).limits.message_size == 50 * 1024**2


def test_a_size_below_its_minimum_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "[tau]\nhostname = x\n\n[limits]\nmessage_size = 512\n"), environ={})
    assert str(info.value).startswith(f"{tmp_path / 'tau.ini'}:5: [limits] message_size: ")
    assert "at least 1024" in str(info.value)


@pytest.mark.parametrize(("text", "line", "says"), [
    ("[tau]\nhostname = x\nthis line is junk\n", 3, "'this line is junk'"),
    ("hostname = x\n[tau]\n", 1, "before the first [section]"),
    ("[tau]\nhostname = x\n[limits]\n[tau]\n", 4, "[tau] given twice"),
    ("[tau]\nhostname = x\nhostname = y\n", 3, "[tau] hostname given twice"),
])
def test_a_syntax_error_names_its_line(tmp_path: Path, text: str, line: int, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), environ={})
    assert info.value.line == line
    assert str(info.value).startswith(f"{tmp_path / 'tau.ini'}:{line}: not a valid INI file: ")
    assert says in str(info.value) and "\n" not in str(info.value)


def test_an_unknown_key_suggests_the_closest_known_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "[limits]\n\nmesage_size = 5M\n"), environ={})
    assert str(info.value) == (f"{tmp_path / 'tau.ini'}:3: [limits] mesage_size: unknown key "
                               "(did you mean message_size?)")


def test_an_unknown_section_suggests_the_closest_known_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r":1: \[outbund\]: unknown section \(did you mean outbound\?\)"):
        load_config(write(tmp_path, "[outbund]\n"), environ={})


def test_a_key_nothing_resembles_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key \(known: url\)"):
        load_config(write(tmp_path, "[redis]\nzzzzzz = 1\n"), environ={})


def test_a_bad_environment_override_names_the_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "[limits]\nmessage_size = 5M\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={"TAU_LIMITS_MESSAGE_SIZE": "lots"})
    assert str(info.value).startswith("TAU_LIMITS_MESSAGE_SIZE: [limits] message_size: invalid value 'lots'")
    assert path not in str(info.value)


def test_a_cross_check_failing_on_an_override_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "[tau]\n"), environ={"TAU_DATABASE_URL": "mysql://db/tau"})
    assert str(info.value).startswith("TAU_DATABASE_URL: [database] url: unsupported URL")


def test_environment_sizes_take_units_too(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[tau]\n"), environ={"TAU_LIMITS_QUOTA_BYTES": "2G"})
    assert config.limits.quota_bytes == 2 * 1024**3
    assert config.overrides == {("limits", "quota_bytes"): "TAU_LIMITS_QUOTA_BYTES"}
