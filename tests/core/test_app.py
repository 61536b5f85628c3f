"""The twistd plugin host: the registry (lazy, cached, cycle-safe), the pre-bind start-up steps
(one ConfigError naming the part at fault), plugin discovery and the composed root service."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from twisted.application.service import Application
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import ILogObserver, Logger, LogLevel

from tau.app.plugins import ITauService, discover
from tau.app.startup import prepare
from tau.app.tap import build_root
from tau.config import ConfigError, load_config
from tau.logs import event_to_json
from tau.registry import Registry, RegistryCycle, component
from tau.storage.database import SyncDatabase
from tau.storage.engines import create_engine
from tau.storage.migrate import code_version, schema_status
from tests.support.harness import write_config


def registry_for(folder: Path, db_url: str, **sections: dict[str, str]) -> Registry:
    config = load_config(str(write_config(folder, db_url, **sections)), environ={})
    return Registry(config, reactor=MemoryReactorClock())


# -- registry ----------------------------------------------------------------------------------

def test_components_are_built_once_and_shared(tmp_path: Path) -> None:
    registry = registry_for(tmp_path, f"sqlite:///{tmp_path}/tau.db")
    assert registry.metrics is registry.metrics
    assert registry.tokens is registry.tokens
    assert registry.authenticator is registry.authenticator


def test_a_provided_component_replaces_the_builder(tmp_path: Path) -> None:
    registry = registry_for(tmp_path, f"sqlite:///{tmp_path}/tau.db")
    marker = object()
    registry.provide("metrics", marker)
    assert registry.metrics is marker


def test_a_dependency_cycle_is_reported_not_recursed(tmp_path: Path) -> None:
    class Cyclic(Registry):
        @component
        def chicken(self) -> Any:
            return self.egg

        @component
        def egg(self) -> Any:
            return self.chicken

    registry = Cyclic(load_config(str(write_config(tmp_path, f"sqlite:///{tmp_path}/tau.db")), environ={}),
                      reactor=MemoryReactorClock())
    with pytest.raises(RegistryCycle, match="chicken -> egg -> chicken"):
        registry.chicken
    # a failed build leaves nothing half-registered
    with pytest.raises(RegistryCycle):
        registry.egg


def test_password_hashing_has_its_own_pool_bounded_by_cpus_and_the_hash_gate(tmp_path: Path) -> None:
    """A burst of logins must not starve the shared pool that blob I/O and MIME parsing use; the
    pool has one thread per hash the gate lets run at once ([limits] password_hashes), at most one
    per CPU (issue 13: 24 guessers must not grow the process by hundreds of MB)."""
    registry = registry_for(tmp_path, f"sqlite:///{tmp_path}/tau.db")
    pool = registry.hash_pool
    try:
        assert pool.name == "tau-password-hash" and registry.authenticator is not None
        bound = registry.config.limits.password_hashes
        assert pool.max == min(len(os.sched_getaffinity(0)), bound)
        assert registry.hash_gate.concurrency == bound
        assert registry.reactor.triggers["during"]["shutdown"]  # stopped with the reactor
    finally:
        pool.stop()


# -- start-up steps before any port binds ------------------------------------------------------

def test_prepare_migrates_a_fresh_database(tmp_path: Path, fresh_db_url: str) -> None:
    registry = registry_for(tmp_path, fresh_db_url)
    notes = prepare(registry)
    assert notes and notes[0].startswith("applied schema deltas: 0001_accounts, 0002_oauth")
    db = SyncDatabase(create_engine(registry.config.database_url))
    assert schema_status(db) == (code_version(), code_version())
    db.close()
    assert prepare(registry_for(tmp_path, fresh_db_url)) == []  # the second start has nothing to do


def refusal(registry: Registry) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        prepare(registry)
    assert "\n" not in str(caught.value)
    return caught.value


def test_a_database_newer_than_the_code_stops_the_start(tmp_path: Path, fresh_db_url: str) -> None:
    prepare(registry_for(tmp_path, fresh_db_url))
    db = SyncDatabase(create_engine(registry_for(tmp_path, fresh_db_url).config.database_url))
    db.run("t", lambda txn: txn.execute("INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                                        (code_version() + 5, "future", 0)))
    db.close()
    exc = refusal(registry_for(tmp_path, fresh_db_url))
    assert (exc.section, exc.key) == ("database", "url")
    assert f"version {code_version() + 5}" in exc.message and "upgrade tau" in exc.message


def test_an_unreachable_postgresql_stops_the_start(tmp_path: Path) -> None:
    exc = refusal(registry_for(tmp_path, "postgresql://postgres@127.0.0.1:1/tau"))
    assert (exc.section, exc.key) == ("database", "url")
    assert "cannot connect to postgresql://postgres@127.0.0.1:1/tau" in exc.message


def test_a_password_in_the_database_url_is_never_shown(tmp_path: Path) -> None:
    exc = refusal(registry_for(tmp_path, "postgresql://tau:s3cr3t-pw@127.0.0.1:1/tau"))
    assert "s3cr3t-pw" not in str(exc)


def test_a_missing_sqlite_folder_stops_the_start(tmp_path: Path) -> None:
    exc = refusal(registry_for(tmp_path, f"sqlite:///{tmp_path}/gone/tau.db"))
    assert (exc.section, exc.key) == ("database", "url") and "does not exist" in exc.message


def test_a_world_readable_secret_stops_the_start(tmp_path: Path) -> None:
    registry = registry_for(tmp_path, f"sqlite:///{tmp_path}/tau.db")
    os.chmod(tmp_path / "secret", 0o644)
    exc = refusal(registry)
    assert (exc.section, exc.key) == ("tau", "secret_file") and "chmod 600" in exc.message


def test_a_missing_secret_stops_the_start(tmp_path: Path) -> None:
    registry = registry_for(tmp_path, f"sqlite:///{tmp_path}/tau.db")
    (tmp_path / "secret").unlink()
    assert refusal(registry).key == "secret_file"


def test_an_unusable_blob_folder_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / "blobs-file").write_text("not a folder")
    exc = refusal(registry_for(tmp_path, f"sqlite:///{tmp_path}/tau.db", blobs={"path": "blobs-file"}))
    assert exc.section == "blobs"


def test_a_tls_listener_without_a_certificate_stops_the_start(tmp_path: Path) -> None:
    exc = refusal(registry_for(tmp_path, f"sqlite:///{tmp_path}/tau.db", listen={"https": "ssl:0"}))
    assert (exc.section, exc.key) == ("tls", "certificate")


# -- plugins and the root service --------------------------------------------------------------

def test_plugins_are_discovered_in_install_order_with_the_http_core_early() -> None:
    plugins = discover()
    assert all(ITauService.providedBy(p) for p in plugins)
    assert [(p.order, p.name) for p in plugins] == sorted((p.order, p.name) for p in plugins)
    http = next(p for p in plugins if p.name == "http")
    assert http.order <= 10  # before anything that mounts on it


def test_the_root_starts_the_database_first_and_stops_listeners_first(tmp_path: Path) -> None:
    from tests.support.harness import make_registry

    registry = make_registry(tmp_path, f"sqlite:///{tmp_path}/tau.db", listen={"http": "tcp:0:interface=127.0.0.1"})
    root = build_root(registry)
    assert [s.name for s in root] == ["database", "background", "listeners"]
    assert "listen-http" in [s.name for s in root.getServiceNamed("listeners")]
    assert registry.services["http"] == "ok"
    registry.db.close()


def test_stopping_the_root_drains_between_listeners_and_the_database(tmp_path: Path) -> None:
    """Listeners stop accepting, requests in flight finish, then background work, then the pool."""
    from twisted.internet import defer

    from tests.support.harness import make_registry, resolve

    registry = make_registry(tmp_path, f"sqlite:///{tmp_path}/tau.db")
    root = build_root(registry)
    events: list[str] = []
    pending = defer.Deferred()

    def recorder(name: str) -> Any:
        return lambda: events.append(f"stop {name}")

    for child in root:
        child.stopService = recorder(child.name)

    def drain(timeout: float) -> defer.Deferred:
        events.append(f"drain {timeout:.0f}s")
        return pending

    root.drains = [drain]
    root.running = 1
    stopped = root.stopService()
    assert events == ["stop listeners", "drain 3s"]  # the database waits for work in flight
    pending.callback(0)
    resolve(stopped)
    assert events == ["stop listeners", "drain 3s", "stop background", "stop database"]
    registry.db.close()


def test_the_root_makes_twistd_log_json_lines(tmp_path: Path) -> None:
    from tests.support.harness import make_registry

    registry = make_registry(tmp_path, f"sqlite:///{tmp_path}/tau.db")
    application = Application("tau")
    build_root(registry).setServiceParent(application)
    assert application.getComponent(ILogObserver) is not None
    registry.db.close()


# -- JSON log lines ----------------------------------------------------------------------------

def test_a_log_event_is_one_json_line_with_its_fields() -> None:
    captured: list[dict[str, Any]] = []
    Logger(namespace="tau.test", observer=captured.append).info(
        "GET {path} {status}", path="/api/health", status=200, obj=object())
    line = event_to_json(captured[0])
    assert line.endswith("\n") and line.count("\n") == 1
    record = json.loads(line)
    assert record["level"] == "info" and record["ns"] == "tau.test" and record["msg"] == "GET /api/health 200"
    assert record["path"] == "/api/health" and record["status"] == 200 and "obj" not in record
    assert record["time"].endswith("+00:00")


def test_a_logged_failure_carries_its_traceback() -> None:
    captured: list[dict[str, Any]] = []
    try:
        1 / 0
    except ZeroDivisionError:
        Logger(namespace="tau.test", observer=captured.append).failure("it broke")
    record = json.loads(event_to_json(captured[0]))
    assert record["level"] == LogLevel.critical.name and "ZeroDivisionError" in record["traceback"]
