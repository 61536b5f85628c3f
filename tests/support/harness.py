"""An in-process tau: real config, real database and blobs, synchronous threads, fake clock."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock

from tau.clock import WALL_CLOCK, Clock
from tau.config import load_config, render_ini
from tau.keys import generate_secret
from tau.registry import Registry
from tau.storage.database import SyncDatabase
from tau.storage.engines import create_engine
from tau.storage.migrate import migrate


def immediate(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> defer.Deferred:
    """``run_in_thread`` that runs at once: results are ready when the call returns."""
    return defer.maybeDeferred(fn, *args, **kwargs)


class ImmediateDatabase:
    """The Database interface over one blocking connection: every ``run`` completes at once."""

    def __init__(self, engine: Any, clock: Clock = WALL_CLOCK) -> None:
        self.engine = engine
        self.sync = SyncDatabase(engine, clock)
        self.before_begin = self.sync.before_begin
        self.before_commit = self.sync.before_commit

    def run(self, name: str, fn: Callable[..., Any], *args: Any, readonly: bool = False,
            **kwargs: Any) -> defer.Deferred:
        return defer.maybeDeferred(self.sync.run, name, fn, *args, readonly=readonly, **kwargs)

    def run_grouped(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> defer.Deferred:
        return self.run(name, fn, *args, **kwargs)

    def run_in_order(self, lane: str, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> defer.Deferred:
        return self.run(name, fn, *args, **kwargs)

    def start(self) -> None:
        pass

    def close(self) -> None:
        self.sync.close()


class ThreadedMemoryReactorClock(MemoryReactorClock):
    def callFromThread(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        f(*args, **kwargs)

    def getThreadPool(self) -> Any:  # pragma: no cover - immediate() is used instead
        raise RuntimeError("tests run thread work immediately")


def write_config(folder: Path, database_url: str, **sections: dict[str, str]) -> Path:
    """A tau.ini in ``folder`` (secret, blobs and TLS paths inside it); returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    values: dict[str, dict[str, str]] = {
        "tau": {"hostname": "localhost", "domains": "example.test", "data_dir": str(folder)},
        "database": {"url": database_url},
        "listen": {},
    }
    for section, keys in sections.items():
        values.setdefault(section, {}).update(keys)
    path = folder / "tau.ini"
    path.write_text(render_ini(values, annotated=False))
    secret = folder / "secret"
    if not secret.exists():
        generate_secret(secret)
    return path


def make_registry(folder: Path, database_url: str, environ: dict[str, str] | None = None,
                  **sections: dict[str, str]) -> Registry:
    """A migrated registry with the domain example.test; all work completes synchronously."""
    path = write_config(folder, database_url, **sections)
    config = load_config(str(path), environ=environ if environ is not None else {})
    engine = create_engine(config.database_url)
    reactor = ThreadedMemoryReactorClock()
    # the fake clock starts at the wall clock: blob files carry real modification times and
    # a test's daemon (its reactor is the wall clock) may share the database
    reactor.advance(time.time())
    db = ImmediateDatabase(engine, reactor)
    migrate(db.sync)
    registry = Registry(config, reactor=reactor, run_in_thread=immediate)
    db.sync.keyring = registry.keyring  # stores seal user content under the registry's secret
    registry.provide("engine", engine)
    registry.provide("db", db)
    registry.provide("inbound_checks", None)  # no SPF/DKIM/DMARC DNS queries at the in-process MX
    from tau.auth import accounts

    db.sync.run("test_domain", accounts.ensure_domain, "example.test")
    return registry


def add_user(registry: Registry, address: str, password: str = "secret-Pa55", fast_hash: bool = False,
             **kwargs: Any) -> Any:
    """A user with a real argon2id hash (cached per password across tests).

    ``fast_hash``: an argon2id hash with the lowest cost parameters instead — the same code path
    at ~1 ms per check, for tests that log in many times or fail logins on purpose.
    """
    from tau.auth import accounts

    # stamped on the registry's clock: a token minted on it never predates the password
    return registry.db.sync.run("test_add_user", accounts.add_user, address, _hash(password, fast_hash), **kwargs)


_HASHES: dict[tuple[str, bool], str] = {}


def _hash(password: str, fast: bool = False) -> str:
    from argon2 import PasswordHasher

    from tau.auth.passwords import hash_password

    if (password, fast) not in _HASHES:
        cheap = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
        _HASHES[password, fast] = cheap.hash(password) if fast else hash_password(password)
    return _HASHES[password, fast]


def resolve(d: Any) -> Any:
    """The result of an already-fired Deferred (or coroutine); raises its failure."""
    if not isinstance(d, defer.Deferred):
        d = defer.ensureDeferred(d)
    out: list[Any] = []
    d.addBoth(out.append)
    if not out:
        raise AssertionError("Deferred has not fired: something waited on the real reactor or a timer")
    result = out[0]
    if hasattr(result, "raiseException") and hasattr(result, "value"):
        result.raiseException()
    return result


__all__ = ["ImmediateDatabase", "add_user", "immediate", "make_registry", "resolve", "write_config", "os"]
