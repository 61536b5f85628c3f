"""Configuration and database errors (exit 2, one line, no traceback) and ``tau migrate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tau.config import render_ini
from tau.storage.migrate import code_version


def write_ini(path: Path, **sections: dict[str, str]) -> Path:
    path.write_text(render_ini(sections))
    return path


def one_line_error(result: Any, *needles: str) -> None:
    assert result.code == 2, (result.out, result.err)
    assert result.err.startswith("tau: ") and result.err.count("\n") == 1, result.err
    assert "Traceback" not in result.err
    for needle in needles:
        assert needle in result.err


def test_unknown_key(tau: Any, tmp_path: Path) -> None:
    ini = tmp_path / "tau.ini"
    ini.write_text("[tau]\nhostname = x\nbogus = 1\n")
    one_line_error(tau("user", "list", "--config", str(ini)), str(ini), "[tau] bogus", "unknown key")


def test_bad_endpoint(tau: Any, tmp_path: Path) -> None:
    ini = write_ini(tmp_path / "tau.ini", listen={"smtp": "bogus:1"})
    one_line_error(tau("check", "--config", str(ini)), "[listen] smtp", "bogus:1")


def test_unreachable_postgres(tau: Any, tmp_path: Path) -> None:
    ini = write_ini(tmp_path / "tau.ini", database={"url": "postgresql://postgres@127.0.0.1:1/x"})
    one_line_error(tau("user", "list", "--config", str(ini)), "cannot connect", "127.0.0.1:1")
    one_line_error(tau("migrate", "--config", str(ini)), "cannot connect")


def test_missing_config_file_and_tau_config_env(tau: Any, tmp_path: Path, monkeypatch: Any) -> None:
    missing = tmp_path / "nope.ini"
    one_line_error(tau("domain", "list", "--config", str(missing)), str(missing), "no such file")
    monkeypatch.setenv("TAU_CONFIG", str(missing))
    one_line_error(tau("domain", "list"), str(missing))


def test_config_before_the_subcommand(installed: Any, tau: Any) -> None:
    result = tau("--config", str(installed.config), "domain", "list", "--json")
    assert result.code == 0, result.err
    assert [d["name"] for d in json.loads(result.out)] == ["example.test"]


def test_environment_overrides_reach_the_cli(installed: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("TAU_LISTEN_SMTP", "bogus:1")
    one_line_error(installed.run("domain", "list"), "[listen] smtp")


def test_usage_errors(tau: Any) -> None:
    assert tau().code == 2
    assert tau("frobnicate").code == 2
    assert tau("user", "add").code == 2
    assert tau("--help").code == 0


def test_missing_sqlite_file_is_not_created(tau: Any, tmp_path: Path) -> None:
    ini = write_ini(tmp_path / "tau.ini", tau={"data_dir": str(tmp_path)})
    one_line_error(tau("user", "list", "--config", str(ini)), "does not exist", "tau migrate")
    one_line_error(tau("migrate", "--status", "--config", str(ini)), "does not exist")
    assert not (tmp_path / "tau.db").exists()


@pytest.fixture
def fresh_config(tmp_path: Path, database_url: str | None) -> Path:
    """A config pointing at an empty database (no tau init)."""
    url = database_url or f"sqlite:///{tmp_path}/fresh.db"
    return write_ini(tmp_path / "tau.ini", tau={"data_dir": str(tmp_path)}, database={"url": url})


def all_deltas() -> list[str]:
    from tau.storage.migrate import load_deltas

    return [f"{d.version:04d}_{d.name}" for d in load_deltas("sqlite")]


def test_migrate_and_status(tau: Any, fresh_config: Path, engine_name: str) -> None:
    cfg = ("--config", str(fresh_config))
    if engine_name == "postgres":  # an SQLite file that does not exist yet has no status
        status = tau("migrate", "--status", "--json", *cfg)
        assert json.loads(status.out) == {"database": 0, "code": code_version(), "pending": all_deltas()}
        pending = tau("migrate", "--status", *cfg)
        assert "schema version: 0" in pending.out and "pending: " + ", ".join(all_deltas()) in pending.out
    one_line_error(tau("domain", "list", *cfg), "tau migrate")

    applied = tau("migrate", *cfg)
    assert applied.code == 0, applied.err
    assert applied.out.splitlines()[: len(all_deltas())] == [f"applied {name}" for name in all_deltas()]
    again = tau("migrate", *cfg)
    assert again.out == f"database schema is up to date (version {code_version()})\n"

    status = tau("migrate", "--status", *cfg)
    assert status.code == 0
    assert f"schema version: {code_version()} (this tau: {code_version()})" in status.out
    assert "up to date" in status.out
    assert json.loads(tau("migrate", "--status", "--json", *cfg).out)["pending"] == []
    assert tau("domain", "list", *cfg).out == "no domains\n"


def test_database_newer_than_the_code(installed: Any) -> None:
    installed.db_run(lambda txn: txn.execute(
        "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)", (9999, "future", 0)))
    one_line_error(installed.run("user", "list"), "9999", "upgrade tau")
    one_line_error(installed.run("migrate"), "9999")
    one_line_error(installed.run("migrate", "--status"), "9999")
