"""Start-up steps that run before any port binds (CalendarServer's PreProcessingService idea).

They run synchronously in ``makeService``, before the reactor starts, so a problem stops the
daemon with one line and exit status 2 instead of a half-started server: config, secret,
database reachable and migrated, TLS material loadable, blob store writable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tau.config import ConfigError
from tau.keys import SecretError
from tau.net.endpoints import is_tau_tls
from tau.storage.database import SyncDatabase
from tau.storage.engines.base import DatabaseUnavailable
from tau.storage.migrate import SchemaTooNew, migrate

if TYPE_CHECKING:
    from tau.registry import Registry


def prepare(registry: Registry) -> list[str]:
    """Run every pre-bind step; raise ConfigError naming the part at fault. Returns log lines."""
    config = registry.config
    notes: list[str] = []
    try:
        _ = registry.keys.jwt_kid  # derives and checks the key now, not at the first login
    except SecretError as exc:
        raise config.error("tau", "secret_file", str(exc))
    try:
        sync = SyncDatabase(registry.engine, registry.clock)
    except DatabaseUnavailable as exc:
        raise config.error("database", "url", str(exc))
    try:
        applied = migrate(sync)
    except SchemaTooNew as exc:
        raise config.error("database", "url", str(exc))
    except Exception as exc:
        raise config.error("database", "url", f"migration failed: {exc}")
    finally:
        sync.close()
    if applied:
        notes.append("applied schema deltas: " + ", ".join(f"{d.version:04d}_{d.name}" for d in applied))
    if any(is_tau_tls(desc) for desc in config.listen.as_dict().values()) or _uses_starttls(config):
        from tau.net.tls import TLSConfigError

        try:
            _ = registry.tls  # loads and checks the certificate before any port binds
        except TLSConfigError as exc:
            raise config.error("tls", "certificate", str(exc))
    try:
        registry.blob_backend.check()
    except ConfigError:
        raise
    except Exception as exc:
        raise config.error("blobs", "backend", f"blob store unavailable: {exc}")
    return notes


def _uses_starttls(config: Any) -> bool:
    return any(config.listen.endpoint(k) for k in ("smtp", "submission", "imap"))


__all__ = ["ConfigError", "prepare"]
