"""The platform floor: keys, database, blobs, bus, login, TLS, limits — what every service uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet import defer, threads

from tau.registry.core import RegistryBase, component

if TYPE_CHECKING:
    from twisted.python.threadpool import ThreadPool

    from tau.atrest.keyring import Keyring
    from tau.auth.authenticator import Authenticator
    from tau.auth.hashgate import HashGate
    from tau.auth.revocation import RevokedSessions
    from tau.auth.throttle import LoginThrottle
    from tau.auth.tokens import TokenService
    from tau.auth.usercache import UserCache
    from tau.blobs.base import BlobBackend
    from tau.blobs.store import BlobStore
    from tau.bus import EventBus
    from tau.http.ratelimit import RateLimiter
    from tau.keys import Keys
    from tau.metrics import Metrics
    from tau.storage.database import Database
    from tau.storage.engines import Engine
    from tau.tls import TLSContext

T = TypeVar("T")


class PlatformComponents(RegistryBase):
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
    def hash_gate(self) -> HashGate:
        from tau.auth.hashgate import HashGate

        limits = self.config.limits
        return HashGate(self._hash_in_pool, limits.password_hashes, limits.password_hash_queue)

    @component
    def hash_pool(self) -> ThreadPool:
        import os

        from twisted.python.threadpool import ThreadPool

        # as many threads as hashes may run at once (the gate's bound), and no more than CPUs
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        size = max(1, min(cpus, self.config.limits.password_hashes))
        pool = ThreadPool(minthreads=0, maxthreads=size, name="tau-password-hash")
        pool.start()
        self.reactor.addSystemEventTrigger("during", "shutdown", pool.stop)
        return pool

    @component
    def metrics(self) -> Metrics:
        from tau.metrics import Metrics

        return Metrics()

    @component
    def keys(self) -> Keys:
        from tau.keys import Keys, load_secret

        return Keys(load_secret(self.config.data_path(self.config.tau.secret_file)))

    @component
    def keyring(self) -> Keyring:
        """Users' data and index keys under the secret (encryption at rest, issue 16)."""
        from tau.atrest.keyring import Keyring

        return Keyring(self.keys)

    @component
    def engine(self) -> Engine:
        from tau.storage.engines import create_engine

        db = self.config.database
        return create_engine(self.config.database_url, db.pool_min, db.pool_max, db.busy_timeout_ms)

    @component
    def db(self) -> Database:
        from tau.storage.database import Database

        db = self.config.database
        return Database(self.engine, self.reactor, observe=self.metrics.observe_db,
                        statement_timeout=db.statement_timeout_ms / 1000,
                        background_timeout=db.background_timeout_ms / 1000, user_share=db.user_share,
                        keyring=self.keyring)

    @component
    def blob_backend(self) -> BlobBackend:
        from tau.blobs.factory import create_backend, sync_with_commits

        backend: BlobBackend = create_backend(self.config)
        sync_with_commits(backend, self.db)
        return backend

    @component
    def blobs(self) -> BlobStore:
        from tau.blobs.factory import create_blob_store

        return create_blob_store(self.whole)

    @component
    def bus(self) -> EventBus:
        from tau.bus import LocalBus

        url = self.config.redis.url
        if not url:
            return LocalBus()
        from tau.bus.redis import RedisBus  # [redis] url: events reach every node (issue 9)

        bus = RedisBus(url, self.reactor)
        bus.start()
        self.health_checks["bus"] = bus.health
        self.reactor.addSystemEventTrigger("before", "shutdown", bus.stop)
        return bus

    @component
    def throttle(self) -> LoginThrottle:
        from tau.auth.throttle import LoginThrottle

        return LoginThrottle(self.clock)

    @component
    def authenticator(self) -> Authenticator:
        """The one login path every protocol calls (tau.auth.authenticator), LDAP included."""
        from tau.auth import ldap
        from tau.auth.authenticator import Authenticator

        directory = ldap.from_config(self.config.ldap.as_dict(), self.run_in_thread, self.clock, self.keys.mac)
        return Authenticator(self.db, self.keys, self.throttle, self.clock, self.run_password_hash,
                             self.config.auth.credential_cache_ttl, directory,
                             self.tokens, self.users, lambda: self.revocations)

    @component
    def tokens(self) -> TokenService:
        from tau.auth.tokens import TokenService

        return TokenService(self.keys, self.issuer, self.config.auth.access_token_ttl, self.clock)

    @component
    def revocations(self) -> RevokedSessions:
        """Revoked sessions, in memory, polled and pushed (tau.auth.revocation)."""
        from tau.auth.revocation import RevokedSessions

        return RevokedSessions(self.db, self.clock, self.bus, self.config.auth.revocation_poll,
                               self.config.auth.access_token_ttl)

    @component
    def users(self) -> UserCache:
        from tau.auth.usercache import UserCache

        return UserCache(self.db, self.clock)

    @component
    def tls(self) -> TLSContext:
        from tau.net.tls import load_tls

        tls = self.config.tls
        return load_tls(self.config.data_path(tls.certificate), self.config.data_path(tls.private_key))

    @component
    def rate_limiter(self) -> RateLimiter:
        from tau.http.ratelimit import create_rate_limiter

        return create_rate_limiter(self.whole)

    @property
    def issuer(self) -> str:
        return self.public_url

    @property
    def public_url(self) -> str:
        url: str = self.config.tau.public_url
        if url:
            return url.rstrip("/")
        return f"https://{self.config.tau.hostname}"
