"""Domain code reads the time from an injected clock, never from the wall clock directly.

Stores stamp rows with ``txn.now`` (the database's clock), services with ``registry.clock``
(``tau.clock.Clock``), pure helpers take a ``now`` argument; tests set those clocks. This check
fails on a new ``time.time()`` / ``datetime.now()`` / ``datetime.utcnow()`` / ``date.today()``
under ``tau/`` outside the allowlist below. ``time.monotonic()`` is fine: it measures durations.
"""

from __future__ import annotations

import ast
import time
from pathlib import Path
from typing import Any

TAU = Path(__file__).resolve().parent.parent / "tau"

#: path under tau/ -> how many wall-clock reads it may make, and why
ALLOWED: dict[str, int] = {
    # the WallClock itself: what code without a reactor (CLI, migrations, restore) is given
    "clock.py": 1,
    # blob ages are file/object modification times, which the OS stamps with the wall clock
    "blobs/local.py": 1,
    "blobs/sweeper.py": 1,
    # pack records carry their write time, compared with the pack files' modification times
    "blobs/pack.py": 3,
    # command-line tools run without a reactor: the real time is the only time
    "cli/check.py": 1,  # days until the TLS certificate expires
    "ops/backup.py": 1,  # tar member mtimes
    "ops/privacy.py": 1,  # the export's date
    "net/tls.py": 2,  # self-signed certificate validity, checked at start-up
    # the aiortc/messenger client bots talk to a server over the network: their own wall clock
    "client/messenger.py": 1,
    # the HTTP edge's error/health bodies carry an informational timestamp; error_body is called
    # where no registry is at hand (the Site's own 400/413 answers)
    "http/errors.py": 1,
    # pure helper's default for fuzzers and unit tests; every domain caller passes its clock's now
    "calendar/ical.py": 1,
}


def _wall_clock_reads(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "time" and any(
                a.name == "time" for a in node.names):
            lines.append(node.lineno)  # from time import time: a disguised time.time()
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner, name = node.func.value, node.func.attr
        owner_name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
        if (owner_name, name) in {("time", "time"), ("datetime", "now"), ("datetime", "utcnow"),
                                  ("datetime", "today"), ("date", "today")}:
            lines.append(node.lineno)
    return sorted(lines)


def test_no_new_wall_clock_reads_in_tau() -> None:
    found: dict[str, list[int]] = {}
    for path in sorted(TAU.rglob("*.py")):
        lines = _wall_clock_reads(ast.parse(path.read_text(), str(path)))
        if lines:
            found[path.relative_to(TAU).as_posix()] = lines
    unexpected = {p: lines for p, lines in found.items() if len(lines) > ALLOWED.get(p, 0)}
    assert not unexpected, (f"wall-clock reads in domain code: {unexpected}; take a clock (tau.clock.Clock, "
                            "registry.clock), txn.now in a store, or a now argument instead")
    # a file that moved away (e.g. a harness to tests/) just drops out; one that stays must need its allowance
    stale = {p: n for p, n in ALLOWED.items() if (TAU / p).exists() and len(found.get(p, [])) < n}
    assert not stale, f"allowlist larger than needed, lower it: {stale} (found {found})"


def test_the_check_sees_each_form() -> None:
    source = ("import time, datetime\nfrom time import time as t\nfrom datetime import UTC, date\n"
              "time.time()\ndatetime.datetime.now()\ndatetime.now(UTC)\ndatetime.datetime.utcnow()\ndate.today()\n"
              "time.monotonic()\n")
    assert _wall_clock_reads(ast.parse(source)) == [2, 4, 5, 6, 7, 8]


def test_stores_stamp_rows_with_the_database_clock(registry: Any) -> None:
    """``txn.now`` is the registry's clock: set it, and a new account carries that time."""
    from tau.auth import accounts

    registry.reactor.advance(86400 * 365)  # a year ahead of the wall clock
    user = registry.db.sync.run("t", accounts.add_user, "clocked@example.test", None)
    assert user.created_at == user.password_changed_at == int(registry.clock.seconds())


def test_the_wall_clock_database_for_the_cli() -> None:
    from twisted.internet.task import Clock

    from tau.clock import WALL_CLOCK
    from tau.storage.database import SyncDatabase
    from tau.storage.engines import create_engine

    assert abs(WALL_CLOCK.seconds() - time.time()) < 60
    clock = Clock()
    clock.advance(1_700_000_000)
    db = SyncDatabase(create_engine("sqlite:///:memory:"), clock)
    try:
        assert db.run("now", lambda txn: txn.now) == 1_700_000_000
    finally:
        db.close()
