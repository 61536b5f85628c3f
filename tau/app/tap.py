"""``twistd -n tau --config FILE``: read config, prepare, compose services into one MultiService."""

from __future__ import annotations

import gc
import sys
from typing import TYPE_CHECKING, Any

from twisted.application.service import MultiService, Service
from twisted.internet import defer
from twisted.logger import ILogObserver, Logger
from twisted.python import usage

from tau.config import DEFAULT_CONFIG, ConfigError, load_config

if TYPE_CHECKING:
    from tau.registry import Registry

log = Logger()
#: seconds a shutdown waits for requests in flight (SIGTERM must end the process within 5 s)
DRAIN_TIMEOUT = 3.0
#: twistd's own default for --pidfile (twisted.scripts._twistd_unix.ServerOptions)
TWISTD_DEFAULT_PIDFILE = "twistd.pid"
#: seconds after start before the health of every part is logged (SFU workers are up by then)
HEALTH_LOG_DELAY = 5.0


class Options(usage.Options):
    optParameters = [["config", "c", None, f"path to tau.ini (default: $TAU_CONFIG or {DEFAULT_CONFIG})"]]

    def postOptions(self) -> None:
        """twistd's pid file defaults to ``twistd.pid`` in the working folder, so a second node started
        from the same folder with another config is refused as "already running": keep it in the
        node's data_dir instead. An explicit ``--pidfile`` (``--pidfile=`` under systemd) is kept."""
        parent = self.parent
        if parent is None or parent.get("pidfile") != TWISTD_DEFAULT_PIDFILE:
            return
        try:
            config = load_config(self["config"])
        except ConfigError:
            return  # makeService reports it as the usual one line
        parent["pidfile"] = str(config.data_dir / "twistd.pid")


class DatabaseService(Service):
    """Owns the adbapi pool: started first, closed last, after listeners stopped accepting."""

    name = "database"

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self.registry.db.start()

    def stopService(self) -> None:
        super().stopService()  # type: ignore[no-untyped-call]
        self.registry.db.close()


class TauService(MultiService):
    """The root service. Children stop in reverse order: listeners, background work, database."""

    def __init__(self, registry: Registry) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.registry = registry
        self._uninstall_sighup: Any = None
        #: ``drain(timeout)`` callables from the services (AppHost.on_drain)
        self.drains: list[Any] = []
        from tau.app.sdnotify import Notifier

        self.notifier = Notifier(registry.reactor)

    def setServiceParent(self, parent: Any) -> None:
        super().setServiceParent(parent)  # type: ignore[no-untyped-call]
        from tau.logs import json_observer

        # twistd consults the application's ILogObserver before choosing its own: JSON lines
        if hasattr(parent, "setComponent"):
            parent.setComponent(ILogObserver, json_observer(sys.stdout))

    def privilegedStartService(self) -> None:
        # a port already in use is an operator's problem: one line and exit 2, not a traceback
        from twisted.internet.error import CannotListenError

        try:
            super().privilegedStartService()  # type: ignore[no-untyped-call]
        except CannotListenError as exc:
            print(f"tau: cannot listen on {exc.interface or '*'}:{exc.port}: {exc.socketError}", file=sys.stderr)
            raise SystemExit(2)

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        from tau.net.tls import install_sighup_reload

        self._uninstall_sighup = install_sighup_reload(self.registry.reactor, [self.reload])
        # everything built at start-up (modules, registry, routes) lives as long as the process:
        # moving it out of the collector's generations keeps full collections from scanning it
        # (they cost ~30 ms each and land on whichever request triggers them)
        gc.freeze()
        services = sorted(self.registry.services)
        log.info("tau started: {services}", services=services)
        self.notifier.ready("serving " + ", ".join(services))
        self.registry.reactor.callLater(HEALTH_LOG_DELAY, self._log_health)

    def _log_health(self) -> Any:
        """Once, soon after start: say why /api/health is not ``ok`` (a missing SFU, LDAP down...)."""
        from tau.http.health import probe

        async def check() -> None:
            report = await probe(self.registry)
            if report.status != "ok":
                log.warn("health {status}: {reasons}", status=report.status, reasons=report.reasons())

        if self.running:
            return defer.Deferred.fromCoroutine(check()).addErrback(
                lambda f: log.failure("health check at start failed", f))
        return None

    def reload(self) -> None:
        """SIGHUP: re-read what can change without a restart (TLS certificates)."""
        self.notifier.reloading(False)
        if self.registry.is_built("tls"):
            self.registry.tls.reload()
        self.notifier.reloading(True)

    def stopService(self) -> Any:
        if self._uninstall_sighup is not None:
            self._uninstall_sighup()
        self.notifier.stopping()
        log.info("tau stopping")
        return defer.Deferred.fromCoroutine(self._stop_in_order())

    async def _stop_in_order(self) -> None:
        """Listeners stop accepting, work in flight finishes (bounded), then background, database.

        ``MultiService.stopService`` would stop every child at once, closing the database under
        requests still being answered."""
        Service.stopService(self)
        for service in reversed(list(self)):
            await defer.maybeDeferred(service.stopService)
            if service.name == "listeners" and self.drains:
                results = await defer.DeferredList(
                    [defer.maybeDeferred(drain, DRAIN_TIMEOUT) for drain in self.drains], consumeErrors=True)
                for ok, value in results:
                    if not ok:
                        log.failure("draining work in flight failed", value)


def build_root(registry: Registry) -> TauService:
    from tau.app.host import AppHost
    from tau.app.plugins import enabled

    root = TauService(registry)
    DatabaseService(registry).setServiceParent(root)  # type: ignore[no-untyped-call]
    background, listening = MultiService(), MultiService()
    background.setName("background")
    listening.setName("listeners")
    background.setServiceParent(root)
    listening.setServiceParent(root)
    host = AppHost(registry, background, listening)
    for plugin in enabled(registry.config):
        plugin.install(registry, host)
    from tau.blobs.sweeper import blob_sweeper

    host.add_service(blob_sweeper(registry))  # blobs left without rows by a crash (issue 13)
    from tau.mail.expunge_purge import expunge_purger

    host.add_service(expunge_purger(registry))  # expunged mail, once no IMAP view can show it (issue 21)
    from tau.atrest.convert import Converter

    host.add_service(Converter(registry, registry.atrest_tables).service())  # rows to seal (issue 16)
    root.drains = host.drains
    return root


def makeService(options: Options) -> TauService:
    from tau.app.startup import prepare
    from tau.registry import Registry

    try:
        config = load_config(options["config"])
        registry = Registry(config)
        for note in prepare(registry):
            print(f"tau: {note}", file=sys.stderr)
        return build_root(registry)
    except ConfigError as exc:
        print(f"tau: {exc}", file=sys.stderr)
        raise SystemExit(2)
