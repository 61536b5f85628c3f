"""SQL lives in store modules only (issue #14, "stores own their tables").

A *store module* is, by path:

* anything under ``tau/storage/`` (engines, migrations, schema);
* any module inside a package named ``store`` or ``stores`` (``tau/mail/store/…``);
* any module whose name ends in ``store`` (``store.py``, ``sharestore.py``, ``pgp_store.py``…);
* or one of ``NAMED_STORES`` below: modules that own their tables but were named before this rule
  (renaming one to ``*_store.py`` takes it off the list).

SQL is a string constant that starts like a statement (``SELECT x``, ``INSERT INTO``, ``UPDATE t
SET``, ``DELETE FROM``, ``WITH t AS (``, ``CREATE TABLE``…; docstrings are prose and skipped), or
any literal string passed to ``execute``/``query``/``runQuery``/``runInteraction`` and friends.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_SQL = re.compile(
    r"^\s*(SELECT\s+\S|INSERT\s+(OR\s+\w+\s+)?INTO\s|UPDATE\s+\w+\s+SET\s|DELETE\s+FROM\s"
    r"|WITH\s+(RECURSIVE\s+)?\w+(\s*\([^)]*\))?\s+AS\s*\(|CREATE\s+(TEMP\s+)?(TABLE|(UNIQUE\s+)?INDEX|VIEW|TRIGGER)\s"
    r"|DROP\s+(TABLE|INDEX|VIEW|TRIGGER)\s|ALTER\s+TABLE\s|PRAGMA\s|VACUUM\b|TRUNCATE\s)")
_RUNNERS = {"execute", "executemany", "executescript", "query", "query_one", "scalar", "runQuery",
            "runOperation", "runInteraction"}

#: stores in all but name: each owns the tables noted
NAMED_STORES = {
    "tau/auth/accounts.py",            # users, domains, aliases, app_passwords
    "tau/auth/oauth_clients.py",       # oauth_clients
    "tau/auth/sendas.py",              # send_as
    "tau/auth/totp.py",                # totp_secrets, totp_recovery
    "tau/blobs/orphans.py",            # job_leases; the sweeper's probe across both blob ledgers
    "tau/calendar/objects.py",         # cal_objects, cal_instances
    "tau/calendar/maintenance.py",     # cal_instances, cal_imip_seen expiry
    "tau/dav/lockdb.py",               # dav_locks
    "tau/files/listing.py",            # file_changes (the tree's change log)
    "tau/messenger/conversations.py",  # msg_conversations, msg_members
    "tau/messenger/keys.py",           # msg_devices, msg_prekeys
    "tau/messenger/messages.py",       # msg_messages, msg_queue
}

#: not stores, and allowed SQL anyway
ALLOWED = {
    "tau/ops/backup.py",               # whole-database tools: dump and restore every table, whoever owns it
    "tau/ops/dbdump.py",
    "tau/ops/restore.py",
}


def is_store(path: str) -> bool:
    parts = path.split("/")
    return (path.startswith("tau/storage/") or bool({"store", "stores"} & set(parts[:-1]))
            or parts[-1].removesuffix(".py").endswith("store") or path in NAMED_STORES)


def _skipped(tree: ast.AST) -> set[int]:
    """Docstrings (prose), and the pieces of f-strings (the whole f-string is checked)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            out.update(id(v) for v in node.values)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def _literal(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


def sql_in(source: str) -> list[tuple[int, str]]:
    """(line, text) of every SQL statement written in ``source``."""
    tree = ast.parse(source)
    skipped = _skipped(tree)
    found: dict[int, tuple[int, str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _RUNNERS:
            text = _literal(node.args[0]) if node.args else None
            if text is not None:
                found[id(node.args[0])] = (node.lineno, text)
        elif isinstance(node, (ast.JoinedStr, ast.Constant)) and id(node) not in skipped:
            text = _literal(node)
            if text is not None and _SQL.match(text):
                found.setdefault(id(node), (node.lineno, text))
    return sorted(found.values())


def violations(path: str, source: str) -> list[str]:
    if is_store(path) or path in ALLOWED:
        return []
    return [f"{path}:{line}: {text.strip()[:80]}" for line, text in sql_in(source)]


def test_sql_only_in_store_modules() -> None:
    found = []
    for file in sorted((ROOT / "tau").rglob("*.py")):
        path = file.relative_to(ROOT).as_posix()
        found += violations(path, file.read_text(encoding="utf-8"))
    assert not found, "SQL outside a store module (move it into the owner's store):\n" + "\n".join(found)


def test_named_stores_exist() -> None:
    assert [p for p in NAMED_STORES if not (ROOT / p).exists()] == []


def test_the_checker_finds_sql_outside_stores() -> None:
    source = '''"""UPDATE users SET is prose in a docstring."""

def retry(txn, queue_id):
    txn.execute("UPDATE outbound_queue SET status = 'queued' WHERE id = ?", (queue_id,))
    rows = txn.query(f"SELECT id FROM users WHERE address IN ({marks})")
    txn.scalar("VACUUM")
    db.runInteraction(lambda t: None)
    return "Select the messages to move"
'''
    found = violations("tau/admin/api.py", source)
    assert [f.split(":")[1] for f in found] == ["4", "5", "6"]
    assert "UPDATE outbound_queue" in found[0]
    assert violations("tau/admin/api.py", 'SQL = "DELETE FROM users WHERE id = ?"\n')
    assert violations("tau/admin/api.py", 'def f(db):\n    return db.runQuery("anything at all")\n')


def test_the_checker_lets_stores_hold_sql() -> None:
    source = 'def f(txn):\n    txn.execute("DELETE FROM users WHERE id = ?", (1,))\n'
    for path in ("tau/storage/migrate.py", "tau/mail/store/queue.py", "tau/files/store.py",
                 "tau/files/sharestore.py", "tau/admin/usage_store.py", "tau/auth/accounts.py"):
        assert violations(path, source) == [], path
    assert violations("tau/admin/storefront.py", source)  # "store" must end the name


def test_every_listed_module_still_exists() -> None:
    """A moved or deleted module leaves the lists, so they never grow stale."""
    root = Path(__file__).resolve().parent.parent
    assert not [p for p in sorted(NAMED_STORES | ALLOWED) if not (root / p).exists()]
