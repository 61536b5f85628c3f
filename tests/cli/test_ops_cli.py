"""Issue 18 item 5 through the real ``tau`` program: --version, ``config show``, ``user set``,
``check --json`` and config errors as one line naming the line, the closest key or the variable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_console_script import run


@pytest.fixture
def install(tmp_path: Path, database_url: str | None) -> dict[str, str]:
    """``tau init`` done (SQLite or PostgreSQL); the environment that selects it."""
    env = {"TAU_DATABASE_URL": database_url} if database_url else {}
    data = tmp_path / "data"
    result = run("init", str(data), "--domain", "example.test", "--hostname", "mail.example.test", env=env)
    assert result.returncode == 0, result.stderr
    env["TAU_CONFIG"] = str(data / "tau.ini")
    added = run("user", "add", "bob@example.test", "--password-stdin", stdin="bob-password-long\n", env=env)
    assert added.returncode == 0, added.stderr
    return env


def test_version_names_the_installed_release() -> None:
    from importlib.metadata import version

    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"tau {version('tau')}"


def test_config_show_lists_only_what_differs_from_the_defaults(tmp_path: Path) -> None:
    ini = tmp_path / "tau.ini"
    ini.write_text("[tau]\nhostname = mail.example.test\n[limits]\nmessage_size = 25M\nquota_bytes = 10G\n")
    result = run("config", "show", "--config", str(ini))
    assert result.returncode == 0, result.stderr
    assert "[tau]\nhostname = mail.example.test\n" in result.stdout
    assert "[limits]\nmessage_size = 25M\n" in result.stdout
    assert "quota_bytes" not in result.stdout  # the default, even though the file spells it out
    assert "[database]" not in result.stdout


def test_config_show_all_lists_every_key(tmp_path: Path) -> None:
    from tau.config import SCHEMA

    ini = tmp_path / "tau.ini"
    ini.write_text("")
    out = run("config", "show", "--all", "--config", str(ini)).stdout
    for section, keys in SCHEMA.items():
        assert f"[{section}]" in out
        for key in keys:
            assert f"\n{key} =" in out, (section, key)
    assert "message_size = 50M" in out


def test_config_show_masks_secrets_and_names_environment_overrides(tmp_path: Path) -> None:
    ini = tmp_path / "tau.ini"
    ini.write_text("[ldap]\nurl = ldap://dir\nbind_password = hunter2\n[outbound]\nsmarthost_password = s3cr3t\n")
    env = {"TAU_DATABASE_URL": "postgresql://tau:pg-pass@db:5432/tau", "TAU_TURN_SHARED_SECRET": "turnkey"}
    out = run("config", "show", "--config", str(ini), env=env).stdout
    for secret in ("hunter2", "s3cr3t", "pg-pass", "turnkey"):
        assert secret not in out
    assert "bind_password = ********" in out and "smarthost_password = ********" in out
    assert "# from TAU_DATABASE_URL\nurl = postgresql://tau:********@db:5432/tau" in out
    assert "# from TAU_TURN_SHARED_SECRET\nshared_secret = ********" in out


def test_user_set_changes_quota_admin_and_login_state(install: dict[str, str]) -> None:
    result = run("user", "set", "bob@example.test", "--quota", "5G", "--admin", "--disable", env=install)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "bob@example.test: disabled, admin, quota 5G"
    [bob] = json.loads(run("user", "list", "--json", env=install).stdout)
    assert (bob["quota_bytes"], bob["admin"], bob["disabled"]) == (5 * 1024**3, True, True)
    result = run("user", "set", "bob@example.test", "--quota", "default", "--no-admin", "--enable", env=install)
    assert result.stdout.strip() == "bob@example.test: active, not admin, quota default"
    [bob] = json.loads(run("user", "list", "--json", env=install).stdout)
    assert (bob["quota_bytes"], bob["admin"], bob["disabled"]) == (None, False, False)


def test_user_set_leaves_what_is_not_given(install: dict[str, str]) -> None:
    run("user", "set", "bob@example.test", "--quota", "512M", "--admin", env=install)
    result = run("user", "set", "bob@example.test", "--disable", env=install)
    assert result.stdout.strip() == "bob@example.test: disabled, admin, quota 512M"


@pytest.mark.parametrize(("argv", "code", "says"), [
    (["bob@example.test"], 2, "nothing to change"),
    (["bob@example.test", "--quota", "lots"], 2, "not a size in bytes"),
    (["bob@example.test", "--disable", "--enable"], 2, "not allowed with argument"),
    (["nobody@example.test", "--admin"], 1, "no user nobody@example.test"),
])
def test_user_set_refuses_bad_requests(install: dict[str, str], argv: list[str], code: int, says: str) -> None:
    result = run("user", "set", *argv, env=install)
    assert result.returncode == code and says in result.stderr and "Traceback" not in result.stderr


def test_check_json_is_one_object_with_every_check(install: dict[str, str]) -> None:
    result = run("check", "--json", env=install)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["failed"] == 0
    names = [c["name"] for c in report["checks"]]
    assert names[:6] == ["config", "database", "secret", "blobs", "tls", "listen"]
    assert {c["status"] for c in report["checks"]} <= {"ok", "warn"}
    assert {"name": "example.test.", "type": "MX", "value": "10 mail.example.test."} in report["dns"]


def test_check_json_reports_a_failure_with_exit_1(install: dict[str, str]) -> None:
    Path(install["TAU_CONFIG"]).parent.joinpath("secret").unlink()
    result = run("check", "--json", env=install)
    report = json.loads(result.stdout)
    assert result.returncode == 1 and report["ok"] is False and report["failed"] == 1
    assert [c["name"] for c in report["checks"] if c["status"] == "fail"] == ["secret"]


def test_config_errors_are_one_line_naming_line_key_or_variable(tmp_path: Path) -> None:
    ini = tmp_path / "tau.ini"
    ini.write_text("[limits]\nmesage_size = 5M\n")
    typo = run("check", "--config", str(ini))
    assert (typo.returncode, typo.stderr) == (2, f"tau: {ini}:2: [limits] mesage_size: unknown key "
                                                 "(did you mean message_size?)\n")
    ini.write_text("[limits]\nmessage_size 5M\n")
    syntax = run("check", "--config", str(ini))
    assert syntax.returncode == 2 and syntax.stderr.startswith(f"tau: {ini}:2: not a valid INI file")
    ini.write_text("[limits]\nmessage_size = 5M\n")
    env = run("check", "--config", str(ini), env={"TAU_LIMITS_MESSAGE_SIZE": "5X"})
    assert env.returncode == 2 and env.stderr.startswith("tau: TAU_LIMITS_MESSAGE_SIZE: [limits] message_size:")
    assert str(ini) not in env.stderr and env.stderr.count("\n") == 1
