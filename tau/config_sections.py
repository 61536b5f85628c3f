"""One frozen dataclass per INI section: the key's type, default and line of help live on its field.

``tau.config`` derives ``SCHEMA`` (parsing, ``etc/tau.ini``, validation) from these classes, so a
new key is one field here. Code reads ``config.limits.quota_bytes`` — typed, checked by mypy — rather
than looking a string up at run time. Comma lists are tuples, since the sections are frozen.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

LISTENERS = ("smtp", "submission", "submissions", "imap", "imaps", "http", "https", "managesieve")


def key(default: T, help: str, minimum: int | None = None, *, size: bool = False, secret: bool = False) -> T:
    """A field with its default, its help line for ``etc/tau.ini`` and, for integers, a minimum.

    ``size``: a byte count that also accepts units (``512K``, ``50M``, ``5G``, binary multiples);
    ``secret``: masked by ``tau config show``."""
    return dataclasses.field(default=default, metadata={"help": help, "minimum": minimum, "size": size,
                                                          "secret": secret})


def size(default: int, help: str, minimum: int | None = None) -> int:
    """A byte count: ``key(..., size=True)``."""
    return key(default, help, minimum, size=True)


def human_size(value: int) -> str:
    """``52428800`` → ``50M``: the largest binary unit that divides it exactly (plain bytes otherwise)."""
    for unit, factor in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if value >= factor and value % factor == 0:
            return f"{value // factor}{unit}"
    return str(value)


@dataclass(frozen=True)
class Section:
    """Common to every section: the old ``config["section"]`` dict view, for code that wants one."""

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class TauSection(Section):
    hostname: str = key("localhost", "name this server answers to (SMTP banner, TLS, links)")
    domains: tuple[str, ...] = key((), "mail domains served here (comma list); more with `tau domain add`")
    data_dir: str = key(".", "where the database, blobs and keys live")
    secret_file: str = key("secret", "32-byte installation secret (mode 0600), relative to data_dir")
    public_url: str = key("", "external base URL every link starts with (shares, calls, digests, OAuth"
                          " issuer, client set-up); `tau init` writes it; empty: https://HOSTNAME")
    disabled_services: tuple[str, ...] = key((), "optional services not started (comma list), e.g. calendar,"
                                             " messenger; names as in /api/health; the http core cannot be"
                                             " disabled")


@dataclass(frozen=True)
class DatabaseSection(Section):
    url: str = key("sqlite:///tau.db", "sqlite:///PATH or postgresql://user:pass@host:5432/db")
    pool_min: int = key(1, "PostgreSQL: connections kept open", minimum=1)
    pool_max: int = key(8, "PostgreSQL: most connections at once", minimum=1)
    statement_timeout_ms: int = key(30000, "longest one SQL statement of a request may run, ms;"
                                    " over it: IMAP NO [LIMIT], HTTP 503 (0: no limit)", minimum=0)
    background_timeout_ms: int = key(600000, "the same for background work (queues, maintenance),"
                                     " ms (0: no limit)", minimum=0)
    user_share: int = key(0, "most transactions one user may have in the pool at once"
                          " (0: half the pool, at least 1)", minimum=0)
    busy_timeout_ms: int = key(5000, "SQLite: how long a write waits for another process's lock"
                               " before tau answers 503 (and fails fast until the lock is gone), ms", minimum=1)


@dataclass(frozen=True)
class BlobsSection(Section):
    backend: str = key("local", "local | s3")
    path: str = key("blobs", "local backend: folder, relative to data_dir")
    s3_endpoint: str = key("", "s3 backend: host:port")
    s3_access_key: str = key("", "s3 backend: access key")
    s3_secret_key: str = key("", "s3 backend: secret key", secret=True)
    s3_bucket: str = key("tau", "s3 backend: bucket")
    s3_secure: bool = key(True, "s3 backend: use https")
    orphan_grace: int = key(3600, "seconds a blob nothing references is kept before the sweeper deletes it"
                            " (an upload in flight writes its blob before its row)", minimum=60)
    sweep_interval: int = key(3600, "seconds between sweeps for unreferenced blobs", minimum=10)
    pack_threshold: int = key(66560, "local backend: blobs of at most this many stored bytes are appended to"
                              " pack files (one fsync shared by concurrent writers); 0: one file each",
                              minimum=0)


@dataclass(frozen=True)
class DavSection(Section):
    max_lock_timeout: int = key(3600, "longest WebDAV lock granted, seconds; `Timeout: Infinite` and"
                                " longer requests get this", minimum=1)


@dataclass(frozen=True)
class RedisSection(Section):
    url: str = key("", "empty: single node; redis://host:6379/0 shares bus, presence, limits")


@dataclass(frozen=True)
class TlsSection(Section):
    certificate: str = key("tls/cert.pem", "PEM certificate chain, relative to data_dir")
    private_key: str = key("tls/key.pem", "PEM private key, relative to data_dir")


@dataclass(frozen=True)
class ListenSection(Section):
    """One Twisted endpoint string per listener (``LISTENERS``); empty disables it."""

    smtp: str = key("", "Twisted endpoint for smtp; empty disables")
    submission: str = key("", "Twisted endpoint for submission; empty disables")
    submissions: str = key("", "Twisted endpoint for submissions; empty disables")
    imap: str = key("", "Twisted endpoint for imap; empty disables")
    imaps: str = key("", "Twisted endpoint for imaps; empty disables")
    http: str = key("", "Twisted endpoint for http; empty disables")
    https: str = key("", "Twisted endpoint for https; empty disables")
    managesieve: str = key("", "Twisted endpoint for ManageSieve (RFC 5804, STARTTLS); empty disables")

    def endpoint(self, name: str) -> str:
        """The endpoint of listener ``name`` (one of ``LISTENERS``), for loops over them all."""
        if name not in LISTENERS:
            raise KeyError(name)
        value: str = getattr(self, name)
        return value


@dataclass(frozen=True)
class LimitsSection(Section):
    message_size: int = size(50 * 1024 * 1024, "largest mail accepted, bytes (or 512K, 50M, 5G)", minimum=1024)
    requests_per_minute_ip: int = key(6000, "HTTP requests per minute per client IP (0: off)", minimum=0)
    requests_per_hour_user: int = key(100000, "HTTP requests per hour per user (0: off)", minimum=0)
    quota_bytes: int = size(10 * 1024**3, "default storage quota per user, bytes or 5G... (0: none)", minimum=0)
    request_body: int = size(1024 * 1024, "largest buffered HTTP request body (JSON, forms), bytes or 1M...",
                            minimum=1024)
    smtp_connections_per_ip: int = key(50, "open SMTP connections (MX, submission) per client address;"
                                       " IPv6 per /64 (Postfix: 50)", minimum=1)
    imap_connections_per_ip: int = key(50, "open IMAP connections per client address, IPv6 per /64",
                                       minimum=1)
    http_connections_per_ip: int = key(100, "open HTTP connections per client address, IPv6 per /64",
                                       minimum=1)
    connections_total: int = key(0, "open connections on all listeners together (0: 80% of the"
                                 " open-file limit)", minimum=0)
    trusted_networks: tuple[str, ...] = key(("127.0.0.0/8", "::1"), "CIDR list never refused by the per-address"
                                            " connection caps (a reverse proxy, the webmail host)")
    line_timeout: int = key(60, "seconds a client may take to send one SMTP/IMAP command line or the"
                            " headers of one HTTP request, however the bytes trickle in", minimum=1)
    data_timeout: int = key(1800, "seconds a client may take to send one message (SMTP DATA/BDAT) or"
                            " one IMAP command with its literals", minimum=1)
    password_hashes: int = key(2, "password hashes (argon2id, 64 MiB each) computed at once", minimum=1)
    password_hash_queue: int = key(32, "password checks waiting for a hasher; more are refused"
                                   " (try again later)", minimum=0)


@dataclass(frozen=True)
class AuthSection(Section):
    access_token_ttl: int = key(3600, "seconds an access token (JWT) lives", minimum=60)
    refresh_token_ttl: int = key(30 * 86400, "seconds a refresh token lives", minimum=300)
    credential_cache_ttl: int = key(300, "seconds a verified password stays cached (0: off)", minimum=0)
    unregistered_oauth_clients: bool = key(True, "an unregistered client_id counts as a native public app"
                                           " (loopback redirects only); false: only `tau oauth client add` ones")
    session_ttl: int = key(12 * 3600, "seconds a browser session (the admin page's HttpOnly cookie) "
                           "lasts without use; each refresh extends it", minimum=300)
    revocation_poll: int = key(2, "seconds between checks for revoked sessions (1-5); a revoked"
                               " session's access tokens are refused on every node within twice this", minimum=1)


@dataclass(frozen=True)
class LdapSection(Section):
    url: str = key("", "empty: local accounts only")
    bind_dn: str = key("", "service account DN")
    bind_password: str = key("", "service account password", secret=True)
    base_dn: str = key("", "where users are searched")
    user_filter: str = key("(mail={user})", "filter; {user} is the login address")
    admin_group: str = key("", "DN of a group (groupOfNames member / memberOf) whose members are admins")
    cache_ttl: int = key(60, "seconds a successful directory bind stays cached (0: off)", minimum=0)
    timeout: int = key(5, "seconds to wait for the directory", minimum=1)


@dataclass(frozen=True)
class OutboundSection(Section):
    smarthost: str = key("", "relay all outbound mail through host:port (empty: deliver by MX lookup)")
    smarthost_user: str = key("", "smarthost AUTH PLAIN user (empty: no AUTH)")
    smarthost_password: str = key("", "smarthost AUTH password", secret=True)
    smarthost_tls: str = key("verify", "smarthost TLS: verify (STARTTLS, certificate checked) | starttls"
                             " (STARTTLS, not checked) | none")
    lifetime: int = key(5 * 86400, "seconds a message is retried before it bounces", minimum=60)
    delay_warning: int = key(4 * 3600, "seconds after which the sender gets a delay notice (0: off)",
                             minimum=0)
    retry_base: int = key(300, "first retry delay, seconds; doubles per attempt", minimum=1)
    retry_max: int = key(14400, "longest retry delay, seconds", minimum=1)
    resolver: str = key("", "host:port of the DNS server to ask (empty: /etc/resolv.conf)")
    connect_timeout: int = key(30, "seconds to connect to a remote MX", minimum=1)
    command_timeout: int = key(300, "seconds to wait for a reply (RFC 5321 4.5.3.2)", minimum=1)
    max_per_domain: int = key(10, "concurrent connections to one destination domain", minimum=1)
    concurrency: int = key(20, "concurrent deliveries in total", minimum=1)
    lease: int = key(900, "seconds a claimed queue row stays ours before another worker may retry it",
                     minimum=1)
    poll_interval: int = key(5, "seconds between queue scans when idle", minimum=1)
    port: int = key(25, "TCP port of remote MX hosts (tests use another)", minimum=1)
    tls_ca_file: str = key("", "PEM CA bundle for verified TLS (empty: the system's)")
    mta_sts_host: str = key("", "tests: fetch every MTA-STS policy from this host:port instead")
    helo: str = key("", "name sent in EHLO (empty: [tau] hostname)")


@dataclass(frozen=True)
class DkimSection(Section):
    selector: str = key("tau", "DKIM selector for keys made by `tau dkim keygen`")
    algorithm: str = key("rsa", "key type for `tau dkim keygen`: rsa | ed25519")
    keys_dir: str = key("dkim", "folder of DKIM keys, relative to data_dir")
    sign: bool = key(True, "sign outgoing mail for domains that have a key")
    verify: bool = key(True, "verify DKIM signatures on inbound MX mail")


@dataclass(frozen=True)
class TrustSection(Section):
    spf: bool = key(True, "check SPF (RFC 7208) on inbound MX mail; fail is refused")
    dmarc: bool = key(True, "apply DMARC (RFC 7489): reject refused, quarantine to Junk")
    timeout: int = key(20, "seconds all DNS checks of one message may take", minimum=1)
    authserv_id: str = key("", "authserv-id in Authentication-Results (empty: [tau] hostname)")


@dataclass(frozen=True)
class SpamSection(Section):
    rspamd_url: str = key("", "Rspamd controller/normal worker base URL, e.g. http://127.0.0.1:11333"
                          " (empty: no spam filtering)")
    reject_score: str = key("15", "score at which mail is refused (550 5.7.1)")
    junk_score: str = key("6", "score at which mail goes to Junk")
    timeout: int = key(15, "seconds to wait for Rspamd; on timeout the mail is accepted", minimum=1)


@dataclass(frozen=True)
class TurnSection(Section):
    uris: tuple[str, ...] = key((), "turn:host:3478?transport=udp, ... (comma list)")
    shared_secret: str = key("", "coturn static-auth-secret", secret=True)
    ttl: int = key(86400, "seconds a TURN credential lives", minimum=60)


@dataclass(frozen=True)
class ConnectSection(Section):
    sfu: bool = key(True, "run aiortc media workers for group calls (needs the `connect` extra)")
    sfu_workers: int = key(1, "media worker processes", minimum=1)


@dataclass(frozen=True)
class FlowsSection(Section):
    chat_digest_after: int = key(3600, "seconds a user must be offline, with chat messages unread that long,"
                                 " before they are summarised by email (0: off)", minimum=0)
    attachment_link_threshold: int = size(10 * 1024 * 1024, "outgoing attachments larger than this many"
                                          " bytes (or 10M...) go to the sender's files and are sent as a"
                                          " share link (0: off)", minimum=0)


@dataclass(frozen=True)
class FilesSection(Section):
    trash_days: int = key(30, "days a deleted file stays in the trash before it is purged (its bytes count"
                          " against the quota until then); 0: deleting destroys at once", minimum=0)
    versions_keep: int = key(10, "earlier versions kept per file when it is overwritten (0: none)", minimum=0)
    upload_expiry: int = key(86400, "seconds an unfinished resumable upload (/api/uploads) is kept after its"
                             " last chunk", minimum=60)


@dataclass(frozen=True)
class MetricsSection(Section):
    allow: tuple[str, ...] = key(("127.0.0.0/8", "::1", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                                  "fc00::/7"),
                                 "CIDR list of clients that may read /metrics (others: 403); empty: nobody")


#: INI section name -> its class, in the order ``etc/tau.ini`` lists them
SECTIONS: dict[str, type[Section]] = {
    "tau": TauSection, "database": DatabaseSection, "blobs": BlobsSection, "dav": DavSection,
    "redis": RedisSection, "tls": TlsSection, "listen": ListenSection, "limits": LimitsSection,
    "auth": AuthSection, "ldap": LdapSection, "outbound": OutboundSection, "dkim": DkimSection,
    "trust": TrustSection, "spam": SpamSection, "turn": TurnSection, "connect": ConnectSection,
    "flows": FlowsSection, "files": FilesSection, "metrics": MetricsSection,
}


def default_text(value: object) -> str:
    """A typed default as the INI file writes it (``etc/tau.ini``, ``tau init``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ", ".join(value)
    return str(value)
