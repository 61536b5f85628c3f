"""``tau check``'s file-mode findings: secret or personal files that others could read.

The data dir, the secret, the TLS private key, the DKIM keys, an SQLite database and the backups
folder must give nothing to "other" (and keys and archives nothing to the group either). A loose
mode is a warning naming the path, its mode and the ``chmod`` that fixes it; it does not fail
the check (the daemon still starts), but it is the first thing an operator should fix.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DEFAULT_BACKUPS = "/var/backups/tau"


def _mode(path: Path) -> int | None:
    try:
        return stat.S_IMODE(path.lstat().st_mode)
    except OSError:
        return None


def _targets(config: Any, backups: str) -> Iterator[tuple[Path, int, int]]:
    """(path, forbidden bits, mode to suggest) for every path that should be private."""
    yield Path(config.data_dir), 0o007, 0o750
    yield config.data_path(config.tau.secret_file), 0o077, 0o600
    yield config.data_path(config.tls.private_key), 0o077, 0o600
    url = config.database_url
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        yield Path(url[len("sqlite:///"):]), 0o007, 0o600
    if config.blobs.backend == "local":
        yield config.data_path(config.blobs.path), 0o007, 0o700
    dkim = config.data_path(config.dkim.keys_dir)
    yield dkim, 0o077, 0o700
    if dkim.is_dir():
        for key in sorted(dkim.rglob("*")):
            yield key, 0o077, 0o700 if key.is_dir() else 0o600
    folder = Path(backups)
    yield folder, 0o077, 0o700
    if folder.is_dir():
        for archive in sorted(folder.glob("*.tar.gz")):
            yield archive, 0o077, 0o600


def loose_modes(config: Any, backups: str = DEFAULT_BACKUPS) -> list[str]:
    """One line per path whose mode gives away too much; missing paths are skipped."""
    found = []
    for path, forbidden, suggest in _targets(config, backups):
        mode = _mode(path)
        if mode is not None and mode & forbidden:
            found.append(f"{path} is mode {mode:04o}, too open: chmod {suggest:o} {path}")
    return found


def check(config: Any, report: Any, backups: str = DEFAULT_BACKUPS) -> None:
    loose = loose_modes(config, backups)
    for line in loose:
        report.line("warn", "modes", line)
    if not loose:
        report.line("ok", "modes", "data dir, secret, keys and backups are private")
