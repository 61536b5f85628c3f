"""The INI configuration (INTERFACE.md, Configuration): defaults, env overrides, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tau.config import SCHEMA, ConfigError, load_config, render_ini


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "tau.ini"
    path.write_text(text)
    return str(path)


def error_of(path: str, environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=environ or {})
    return caught.value


def test_an_empty_file_gives_every_default(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""), environ={})
    assert config.database.url == "sqlite:///tau.db"
    assert config.limits.requests_per_minute_ip == 6000
    assert config.listen.http == ""
    assert config.tau.domains == ()
    assert config.blobs.s3_secure is True


def test_values_are_parsed_to_their_types(tmp_path: Path) -> None:
    path = write(tmp_path, "[tau]\ndomains = a.test, b.test,\n[limits]\nmessage_size = 1_048_576\n"
                           "[blobs]\ns3_secure = no\n")
    config = load_config(path, environ={})
    assert config.tau.domains == ("a.test", "b.test")
    assert config.limits.message_size == 1048576
    assert config.blobs.s3_secure is False


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[limits]\nrequests_per_minute_ip = 5\n")
    config = load_config(path, environ={"TAU_LIMITS_REQUESTS_PER_MINUTE_IP": "100",
                                        "TAU_LISTEN_HTTP": "tcp:8080:interface=127.0.0.1"})
    assert config.limits.requests_per_minute_ip == 100
    assert config.listen.http == "tcp:8080:interface=127.0.0.1"


def test_environment_override_is_validated_like_the_file(tmp_path: Path) -> None:
    exc = error_of(write(tmp_path, ""), {"TAU_LIMITS_MESSAGE_SIZE": "lots"})
    assert (exc.section, exc.key) == ("limits", "message_size")


def test_sqlite_paths_are_relative_to_data_dir(tmp_path: Path) -> None:
    path = write(tmp_path, "[tau]\ndata_dir = data\n[database]\nurl = sqlite:///tau.db\n")
    config = load_config(path, environ={})
    assert config.database_url == f"sqlite:///{tmp_path / 'data' / 'tau.db'}"


def test_unknown_section_names_file_and_section(tmp_path: Path) -> None:
    path = write(tmp_path, "[mail]\nx = 1\n")
    exc = error_of(path)
    assert (exc.file, exc.section, exc.key) == (path, "mail", None)
    assert str(exc).startswith(f"{path}:1: [mail]: unknown section")


def test_unknown_key_names_file_section_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "[database]\nurll = sqlite:///x.db\n")
    exc = error_of(path)
    assert (exc.file, exc.section, exc.key) == (path, "database", "urll")
    assert str(exc) == f"{path}:2: [database] urll: unknown key (did you mean url?)"


def test_bad_integer_names_the_key_and_value(tmp_path: Path) -> None:
    exc = error_of(write(tmp_path, "[limits]\nmessage_size = ten\n"))
    assert (exc.section, exc.key) == ("limits", "message_size")
    assert "'ten'" in str(exc)


def test_integer_below_minimum_is_refused(tmp_path: Path) -> None:
    exc = error_of(write(tmp_path, "[auth]\naccess_token_ttl = 5\n"))
    assert (exc.section, exc.key) == ("auth", "access_token_ttl")
    assert "at least 60" in str(exc)


@pytest.mark.parametrize("desc", ["tcp:notaport", "tcp:70000", "bogus:25", "tcp:25:bogus=1",
                                  "ssl:993:privateKey=/nonexistent/key.pem"])
def test_bad_endpoint_string_names_the_listener(tmp_path: Path, desc: str) -> None:
    exc = error_of(write(tmp_path, f"[listen]\nsmtp = {desc}\n"))
    assert (exc.section, exc.key) == ("listen", "smtp")
    assert "bad endpoint" in str(exc) and desc in str(exc)


def test_good_endpoint_strings_are_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "[listen]\nsmtp = tcp:2525:interface=127.0.0.1\nimaps = ssl:993\nhttp = tcp6:8080\n")
    config = load_config(path, environ={})
    assert config.listen.imaps == "ssl:993"


def test_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.ini")
    exc = error_of(path)
    assert exc.file == path and exc.section is None
    assert str(exc).startswith(path + ": no such file")


def test_tau_config_env_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[tau]\nhostname = mail.example.test\n")
    config = load_config(None, environ={"TAU_CONFIG": path})
    assert config.path == path and config.tau.hostname == "mail.example.test"


def test_a_file_that_is_not_ini_is_an_error(tmp_path: Path) -> None:
    exc = error_of(write(tmp_path, "this is not ini\n"))
    assert "not a valid INI file" in str(exc) and "\n" not in str(exc)


def test_unsupported_database_url_is_refused(tmp_path: Path) -> None:
    exc = error_of(write(tmp_path, "[database]\nurl = mysql://x/y\n"))
    assert (exc.section, exc.key) == ("database", "url")


def test_redis_with_sqlite_is_refused(tmp_path: Path) -> None:
    exc = error_of(write(tmp_path, "[redis]\nurl = redis://127.0.0.1:6379/0\n"))
    assert (exc.section, exc.key) == ("redis", "url")
    assert "SQLite" in str(exc)


def test_redis_with_postgresql_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "[redis]\nurl = redis://127.0.0.1:6379/0\n[database]\nurl = postgresql://u@h/db\n")
    assert load_config(path, environ={}).redis.url == "redis://127.0.0.1:6379/0"


def test_pool_min_above_pool_max_is_refused(tmp_path: Path) -> None:
    exc = error_of(write(tmp_path, "[database]\npool_min = 9\npool_max = 2\n"))
    assert (exc.section, exc.key) == ("database", "pool_min")


def test_render_ini_round_trips_the_defaults(tmp_path: Path) -> None:
    empty = load_config(write(tmp_path, ""), environ={})
    config = load_config(write(tmp_path, render_ini({})), environ={})
    assert all(getattr(config, section) == getattr(empty, section) for section in SCHEMA)


def test_render_ini_round_trips_given_values(tmp_path: Path) -> None:
    values = {"tau": {"hostname": "mail.example.test", "domains": "example.test,example.org"},
              "listen": {"http": "tcp:18080:interface=127.0.0.1"},
              "limits": {"requests_per_minute_ip": "100"}}
    for annotated in (True, False):
        config = load_config(write(tmp_path, render_ini(values, annotated=annotated)), environ={})
        assert config.tau.hostname == "mail.example.test"
        assert config.tau.domains == ("example.test", "example.org")
        assert config.listen.http == "tcp:18080:interface=127.0.0.1"
        assert config.limits.requests_per_minute_ip == 100
