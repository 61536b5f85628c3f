"""The Registry: every shared component, built lazily once, handed to each service.

Services take the registry and pull what they need (``registry.db``, ``registry.authenticator``...),
never from module globals (CalendarServer's global ``config`` is the warning; Synapse's
``HomeServer`` with ``cache_in_self`` is the model). Builders are cached properties with cycle
detection, so a test can build a registry with a fake reactor and synchronous threads.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet import defer, threads

from tau.config import Config

T = TypeVar("T")


class RegistryCycle(Exception):
    pass


def component(builder: Callable[["Registry"], T]) -> T:
    """A lazily built, cached component; building it twice at once is a cycle."""
    name = builder.__name__

    @functools.wraps(builder)
    def get(self: "Registry") -> T:
        if name in self._built:
            return self._built[name]
        if name in self._building:
            raise RegistryCycle(" -> ".join([*self._building, name]))
        self._building.append(name)
        try:
            value = builder(self)
        finally:
            self._building.pop()
        self._built[name] = value
        return value

    return property(get)  # type: ignore[return-value]


class Registry:
    def __init__(self, config: Config, reactor: Any = None,
                 run_in_thread: Callable[..., defer.Deferred] | None = None) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.config = config
        self.reactor = reactor
        self._built: dict[str, Any] = {}
        self._building: list[str] = []
        self._run_in_thread = run_in_thread
        #: name → callable returning a Deferred/str status; filled by services for /api/health
        self.health_checks: dict[str, Callable[[], Any]] = {}
        #: name of each enabled service → "ok"; shown in /api/health
        self.services: dict[str, str] = {}

    def provide(self, name: str, value: Any) -> None:
        """Pre-seed a component (tests, or the app passing an already-built one)."""
        self._built[name] = value

    @property
    def clock(self) -> Any:
        return self.reactor

    def run_in_thread(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> defer.Deferred[T]:
        """Blocking work (argon2, big file I/O) off the reactor thread."""
        if self._run_in_thread is not None:
            return self._run_in_thread(fn, *args, **kwargs)
        return threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), fn, *args, **kwargs)

    def run_password_hash(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> defer.Deferred[T]:
        """argon2id work, through ``hash_gate`` into its own small pool: a burst of logins or
        share-link guesses neither starves the shared pool (blob I/O, MIME parsing wait behind it)
        nor holds 64 MiB per attempt; past the gate's queue it fails at once with HashBusy."""
        return self.hash_gate.run(fn, *args, **kwargs)

    def _hash_in_pool(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> defer.Deferred[T]:
        if self._run_in_thread is not None:
            return self._run_in_thread(fn, *args, **kwargs)
        return threads.deferToThreadPool(self.reactor, self.hash_pool, fn, *args, **kwargs)

    @component
    def hash_gate(self) -> Any:
        from tau.auth.hashgate import HashGate

        limits = self.config["limits"]
        return HashGate(self._hash_in_pool, limits["password_hashes"], limits["password_hash_queue"])

    @component
    def hash_pool(self) -> Any:
        import os

        from twisted.python.threadpool import ThreadPool

        # as many threads as hashes may run at once (the gate's bound), and no more than CPUs
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        size = max(1, min(cpus, self.config.get("limits", "password_hashes")))
        pool = ThreadPool(minthreads=0, maxthreads=size, name="tau-password-hash")
        pool.start()
        self.reactor.addSystemEventTrigger("during", "shutdown", pool.stop)
        return pool

    @component
    def metrics(self) -> Any:
        from tau.metrics import Metrics

        return Metrics()

    @component
    def keys(self) -> Any:
        from tau.keys import Keys, load_secret

        return Keys(load_secret(self.config.data_path(self.config.get("tau", "secret_file"))))

    @component
    def engine(self) -> Any:
        from tau.storage.engines import create_engine

        db = self.config["database"]
        return create_engine(self.config.database_url, db["pool_min"], db["pool_max"], db["busy_timeout_ms"])

    @component
    def db(self) -> Any:
        from tau.storage.database import Database

        db = self.config["database"]
        return Database(self.engine, self.reactor, observe=self.metrics.observe_db,
                        statement_timeout=db["statement_timeout_ms"] / 1000,
                        background_timeout=db["background_timeout_ms"] / 1000, user_share=db["user_share"])

    @component
    def blob_backend(self) -> Any:
        from tau.blobs.factory import create_backend

        return create_backend(self.config)

    @component
    def blobs(self) -> Any:
        from tau.blobs.factory import create_blob_store

        return create_blob_store(self)

    @component
    def mail_store(self) -> Any:
        """The one MailStore every mail-touching service (SMTP, IMAP, API, calendar...) shares."""
        from tau.mail.store import MailStore

        return MailStore(self)

    @component
    def bus(self) -> Any:
        from tau.bus import LocalBus

        url = self.config.get("redis", "url")
        if not url:
            return LocalBus()
        from tau.bus.redis import RedisBus  # [redis] url: events reach every node (issue 9)

        bus = RedisBus(url, self.reactor)
        bus.start()
        self.health_checks["bus"] = bus.health
        self.reactor.addSystemEventTrigger("before", "shutdown", bus.stop)
        return bus

    @component
    def throttle(self) -> Any:
        from tau.auth.throttle import LoginThrottle

        return LoginThrottle(self.clock)

    @component
    def authenticator(self) -> Any:
        """The one login path every protocol calls (tau.auth.authenticator), LDAP included."""
        from tau.auth import ldap
        from tau.auth.authenticator import Authenticator

        directory = ldap.from_config(self.config["ldap"], self.run_in_thread, self.clock, self.keys.mac)
        return Authenticator(self.db, self.keys, self.throttle, self.clock, self.run_password_hash,
                             self.config.get("auth", "credential_cache_ttl"), directory,
                             self.tokens, self.users, lambda: self.revocations)

    @component
    def tokens(self) -> Any:
        from tau.auth.tokens import TokenService

        return TokenService(self.keys, self.issuer, self.config.get("auth", "access_token_ttl"), self.clock)

    @component
    def revocations(self) -> Any:
        """Revoked sessions, in memory, polled and pushed (tau.auth.revocation)."""
        from tau.auth.revocation import RevokedSessions

        return RevokedSessions(self.db, self.clock, self.bus, self.config.get("auth", "revocation_poll"),
                               self.config.get("auth", "access_token_ttl"))

    @component
    def users(self) -> Any:
        from tau.auth.usercache import UserCache

        return UserCache(self.db, self.clock)

    @component
    def tls(self) -> Any:
        from tau.net.tls import load_tls

        tls = self.config["tls"]
        return load_tls(self.config.data_path(tls["certificate"]), self.config.data_path(tls["private_key"]))

    @component
    def rate_limiter(self) -> Any:
        from tau.http.ratelimit import create_rate_limiter

        return create_rate_limiter(self)

    @property
    def issuer(self) -> str:
        return self.public_url

    @property
    def public_url(self) -> str:
        url = self.config.get("tau", "public_url")
        if url:
            return url.rstrip("/")
        return f"https://{self.config.get('tau', 'hostname')}"
