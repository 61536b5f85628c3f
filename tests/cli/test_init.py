"""``tau init``: what it writes, with which modes, and that it never overwrites data."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

from tau.auth import accounts
from tau.config import load_config
from tau.keys import load_secret

DOMAIN = "example.test"
HOSTNAME = "mail.example.test"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_writes_a_working_installation(installed: Any) -> None:
    data = installed.data_dir
    assert mode(data) == 0o750
    assert mode(data / "secret") == 0o600
    assert mode(data / "tau.ini") == 0o640
    assert (data / "blobs").is_dir()
    assert (data / "tls" / "cert.pem").is_file()
    assert mode(data / "tls" / "key.pem") == 0o600
    assert len(load_secret(data / "secret")) == 32

    config = load_config(str(installed.config))
    assert config.tau.hostname == HOSTNAME
    assert config.tau.domains == (DOMAIN,)
    assert config.tau.data_dir == str(data)
    assert config.tau.secret_file == "secret"
    assert config.blobs.path == "blobs"
    assert config.tls.certificate == "tls/cert.pem"
    assert config.tls.private_key == "tls/key.pem"
    assert config.listen.as_dict() == {"smtp": "tcp:25", "submission": "tcp:587", "submissions": "ssl:465",
                                "imap": "tcp:143", "imaps": "ssl:993", "http": "tcp:8080", "https": "ssl:8443",
                                "managesieve": "tcp:4190"}
    if installed.database_url is None:
        assert config.database.url == f"sqlite:///{data}/tau.db"
        assert config.database.url.startswith("sqlite:////")
        assert mode(data / "tau.db") == 0o640
    else:
        assert config.database.url == installed.database_url
        assert not (data / "tau.db").exists()
    assert installed.db_run(accounts.list_domains)[0]["name"] == DOMAIN


def test_init_prints_what_it_made_and_next_steps(tau: Any, tmp_path: Path, database_url: str | None,
                                                 init_args: Any) -> None:
    result = tau(*init_args(tmp_path / "d", database_url))
    assert result.code == 0, result.err
    assert "0001_accounts" in result.out
    assert f"tau user add postmaster@{DOMAIN} --config {tmp_path / 'd' / 'tau.ini'}" in result.out
    assert f"twistd -n tau --config {tmp_path / 'd' / 'tau.ini'}" in result.out


def test_second_init_refuses(installed: Any, tau: Any, init_args: Any) -> None:
    before = installed.config.read_text()
    result = tau(*init_args(installed.data_dir, installed.database_url, "--dev-ports"))
    assert result.code == 1
    assert result.err.startswith("tau: ") and "exists already" in result.err and "--force" in result.err
    assert result.err.count("\n") == 1
    assert installed.config.read_text() == before


def test_force_rewrites_config_and_keeps_data(with_alice: Any, tau: Any, init_args: Any) -> None:
    data = with_alice.data_dir
    kept = {p: p.read_bytes() for p in (data / "secret", data / "tls" / "cert.pem", data / "tls" / "key.pem")}
    (data / "blobs" / "some-blob").write_bytes(b"x")
    result = tau(*init_args(data, with_alice.database_url, "--dev-ports", "--force"))
    assert result.code == 0, result.err
    assert "(kept)" in result.out
    assert {p: p.read_bytes() for p in kept} == kept
    assert (data / "blobs" / "some-blob").read_bytes() == b"x"
    assert with_alice.db_run(accounts.get_user, "alice@example.test") is not None
    assert load_config(str(with_alice.config)).listen.smtp == "tcp:10025:interface=127.0.0.1"


def test_dev_ports(tau: Any, tmp_path: Path, database_url: str | None, init_args: Any) -> None:
    result = tau(*init_args(tmp_path / "d", database_url, "--dev-ports"))
    assert result.code == 0, result.err
    listen = load_config(str(tmp_path / "d" / "tau.ini")).listen.as_dict()
    assert listen == {
        "smtp": "tcp:10025:interface=127.0.0.1", "submission": "tcp:10587:interface=127.0.0.1",
        "submissions": "ssl:10465:interface=127.0.0.1", "imap": "tcp:10143:interface=127.0.0.1",
        "imaps": "ssl:10993:interface=127.0.0.1", "http": "tcp:18080:interface=127.0.0.1",
        "https": "ssl:18443:interface=127.0.0.1", "managesieve": "tcp:14190:interface=127.0.0.1"}


def test_dev_ports_links_point_at_the_local_listener(tau: Any, tmp_path: Path, database_url: str | None,
                                                     init_args: Any) -> None:
    """Share, call and digest links a quick-tour install generates must open on this machine."""
    assert tau(*init_args(tmp_path / "d", database_url, "--dev-ports")).code == 0
    assert load_config(str(tmp_path / "d" / "tau.ini")).tau.public_url == "http://127.0.0.1:18080"

def test_public_url_names_the_configured_https_port(tau: Any, tmp_path: Path, database_url: str | None,
                                                    init_args: Any, monkeypatch: Any) -> None:
    """Without --dev-ports links go to https://HOSTNAME, with the https listener's port unless it is 443."""
    assert tau(*init_args(tmp_path / "e", database_url)).code == 0
    assert load_config(str(tmp_path / "e" / "tau.ini")).tau.public_url == "https://mail.example.test:8443"
    monkeypatch.setenv("TAU_LISTEN_HTTPS", "ssl:443")
    assert tau(*init_args(tmp_path / "f", database_url)).code == 0
    monkeypatch.delenv("TAU_LISTEN_HTTPS")
    assert load_config(str(tmp_path / "f" / "tau.ini")).tau.public_url == "https://mail.example.test"


def test_init_on_postgres_through_the_environment(tau: Any, tmp_path: Path, pg_database: str,
                                                   monkeypatch: Any, init_args: Any) -> None:
    """TAU_DATABASE_URL overrides the written SQLite default: how a PostgreSQL install starts."""
    import psycopg2

    schema = "t_env_init"
    conn = psycopg2.connect(pg_database)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")
    url = f"{pg_database}?options=-csearch_path%3D{schema}"
    monkeypatch.setenv("TAU_DATABASE_URL", url)
    result = tau(*init_args(tmp_path / "d", None))
    assert result.code == 0, result.err
    assert not (tmp_path / "d" / "tau.db").exists()
    with conn.cursor() as cur:
        cur.execute(f"SELECT name FROM {schema}.domains")
        assert cur.fetchall() == [(DOMAIN,)]
    conn.close()


def test_init_with_explicit_config_path(tau: Any, tmp_path: Path, database_url: str | None,
                                        init_args: Any) -> None:
    ini = tmp_path / "etc" / "tau.ini"
    result = tau(*init_args(tmp_path / "d", database_url), "--config", str(ini))
    assert result.code == 0, result.err
    assert ini.is_file() and not (tmp_path / "d" / "tau.ini").exists()
    assert load_config(str(ini)).data_dir == tmp_path / "d"
    assert tau("domain", "list", "--config", str(ini)).out.startswith("DOMAIN")


def test_init_refuses_bad_domain_and_writes_nothing(tau: Any, tmp_path: Path) -> None:
    result = tau("init", str(tmp_path / "d"), "--domain", "not a domain", "--hostname", HOSTNAME)
    assert result.code == 1
    assert result.err.startswith("tau: ") and "not a domain" in result.err
    assert not (tmp_path / "d").exists()


def test_init_bad_database_url_in_environment_leaves_no_config(tau: Any, tmp_path: Path, monkeypatch: Any,
                                                               init_args: Any) -> None:
    monkeypatch.setenv("TAU_DATABASE_URL", "mysql://nope")
    result = tau(*init_args(tmp_path / "d", None))
    assert result.code == 2
    assert result.err == f"tau: {tmp_path / 'd' / 'tau.ini'}: [database] url: unsupported URL 'mysql://nope' " \
                         "(sqlite:///PATH or postgresql://...)\n"
    assert not (tmp_path / "d" / "tau.ini").exists()
    assert [p.name for p in (tmp_path / "d").iterdir()] == []
