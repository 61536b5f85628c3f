"""systemd units pass ``systemd-analyze verify``; the Grafana dashboard covers every /metrics series;
the certbot hook is valid shell."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = ["tau.service", "tau@.service", "tau-backup.service", "tau-backup.timer"]
SERIES = ["tau_http_requests_total", "tau_http_request_duration_seconds", "tau_db_transaction_duration_seconds",
          "tau_connections", "tau_logins_total", "tau_errors_total", "tau_rate_limited_total",
          "tau_mail_queue_messages", "tau_mail_deliveries_total", "tau_mail_inbound_accepted_total",
          "tau_mail_inbound_rejected_total", "tau_mail_auth_results_total", "tau_mail_spam_verdicts_total"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify resolves ExecStart binaries and User=: point it at stand-ins in a private root-less
    # copy (tau@.service needs an instance name to be verified)
    for unit in UNITS:
        text = (ROOT / "systemd" / unit).read_text()
        name = "tau@node1.service" if unit == "tau@.service" else unit
        (tmp_path / name).write_text(text)
    env = dict(os.environ, SYSTEMD_LOG_LEVEL="warning")
    names = [str(tmp_path / ("tau@node1.service" if u == "tau@.service" else u)) for u in UNITS]
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *names], capture_output=True, text=True,
                            env=env, timeout=60)
    problems = [line for line in (result.stderr + result.stdout).splitlines()
                if line.strip() and "Failed to open /dev/tty" not in line
                and "is not a symlink" not in line  # no running systemd (containers)
                and "System has not been booted with systemd" not in line]
    assert result.returncode == 0 and not problems, result.stderr + result.stdout


def test_main_unit_is_notify_and_hardened() -> None:
    text = (ROOT / "systemd" / "tau.service").read_text()
    for line in ("Type=notify", "ProtectSystem=strict", "PrivateTmp=yes", "NoNewPrivileges=yes",
                 "AmbientCapabilities=CAP_NET_BIND_SERVICE", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
                 "ReadWritePaths=/var/lib/tau", "ExecReload=/bin/kill -HUP $MAINPID"):
        assert line in text.splitlines(), line
    assert "/etc/tau/%i.ini" in (ROOT / "systemd" / "tau@.service").read_text()
    assert "tau backup" in (ROOT / "systemd" / "tau-backup.service").read_text()
    assert "OnCalendar=" in (ROOT / "systemd" / "tau-backup.timer").read_text()


def test_grafana_dashboard_uses_every_series() -> None:
    dashboard = json.loads((ROOT / "etc" / "grafana" / "tau.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for series in SERIES:
        assert series in exprs, series


def test_certbot_hook_is_valid_shell_and_reloads() -> None:
    hook = ROOT / "etc" / "certbot-deploy-hook.sh"
    assert os.access(hook, os.X_OK)
    subprocess.run(["sh", "-n", str(hook)], check=True)
    assert "systemctl reload" in hook.read_text()
