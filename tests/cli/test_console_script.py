"""The real ``tau`` program in a subprocess: entry point, stdin, exit codes, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def tau_command() -> list[str]:
    script = Path(sys.executable).parent / "tau"
    return [str(script)] if script.exists() else [sys.executable, "-m", "tau.cli.main"]


def run(*argv: str, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TAU_")}
    environ["PYTHONPATH"] = str(REPO) + os.pathsep + environ.get("PYTHONPATH", "")
    environ.update(env or {})
    return subprocess.run([*tau_command(), *argv], check=False, input=stdin, capture_output=True, text=True,
                          env=environ, cwd=REPO, timeout=120)


def test_help_lists_every_command() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("init", "migrate", "user", "domain", "alias", "apppassword", "check"):
        assert command in result.stdout


def test_init_user_add_and_list(tmp_path: Path, database_url: str | None) -> None:
    data = tmp_path / "data"
    args = ["init", str(data), "--domain", "example.test", "--hostname", "mail.example.test"]
    env = {"TAU_DATABASE_URL": database_url} if database_url else {}
    result = run(*args, env=env)
    assert result.returncode == 0, result.stderr
    env["TAU_CONFIG"] = str(data / "tau.ini")
    added = run("user", "add", "alice@example.test", "--password-stdin", stdin="alice-password\n", env=env)
    assert added.returncode == 0, added.stderr
    listing = run("user", "list", "--json", env=env)
    assert [u["address"] for u in json.loads(listing.stdout)] == ["alice@example.test"]
    again = run(*args, env=env)
    assert again.returncode == 1 and again.stderr.startswith("tau: ")


def test_bad_config_exits_2_with_one_line(tmp_path: Path) -> None:
    ini = tmp_path / "tau.ini"
    ini.write_text("[listen]\nsmtp = bogus:1\n")
    result = run("user", "list", "--config", str(ini))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"tau: {ini}: [listen] smtp:")
    assert result.stderr.count("\n") == 1


def test_unreachable_postgres_exits_2(tmp_path: Path) -> None:
    env: dict[str, Any] = {"TAU_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/x",
                           "TAU_CONFIG": str(tmp_path / "tau.ini")}
    (tmp_path / "tau.ini").write_text("")
    result = run("domain", "list", env=env)
    assert result.returncode == 2
    assert result.stderr.startswith("tau: cannot connect to postgresql://postgres@127.0.0.1:1/x")
    assert "Traceback" not in result.stderr
