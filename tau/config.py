"""The INI configuration: one small table per section, env overrides, validation.

Every key is declared here with its type, default and a line of help, so that validation,
``etc/tau.ini`` and error messages all come from one place. ``TAU_<SECTION>_<KEY>`` in the
environment overrides the file (INTERFACE.md, Configuration). Errors are ``ConfigError`` naming
file, section and key; the CLI and the twistd plugin print them as one line and exit 2.
"""

from __future__ import annotations

import configparser
import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = "/etc/tau/tau.ini"


class ConfigError(Exception):
    """A configuration problem a person must fix; rendered as one line."""

    def __init__(self, file: str, section: str | None, key: str | None, message: str) -> None:
        self.file, self.section, self.key, self.message = file, section, key, message
        where = file
        if section:
            where += f": [{section}]"
            if key:
                where += f" {key}"
        super().__init__(f"{where}: {message}")


def _str(value: str) -> str:
    return value.strip()


def _int(value: str) -> int:
    return int(value.strip().replace("_", ""))


def _bool(value: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected a boolean, got {value!r}")


def _list(value: str) -> list[str]:
    return [p.strip() for p in value.split(",") if p.strip()]


@dataclass(frozen=True)
class Key:
    parse: Callable[[str], Any]
    default: str
    help: str
    minimum: int | None = None


LISTENERS = ("smtp", "submission", "submissions", "imap", "imaps", "http", "https")

SCHEMA: dict[str, dict[str, Key]] = {
    "tau": {
        "hostname": Key(_str, "localhost", "name this server answers to (SMTP banner, TLS, links)"),
        "domains": Key(_list, "", "mail domains served here (comma list); more with `tau domain add`"),
        "data_dir": Key(_str, ".", "where the database, blobs and keys live"),
        "secret_file": Key(_str, "secret", "32-byte installation secret (mode 0600), relative to data_dir"),
        "public_url": Key(_str, "", "external base URL for links, e.g. https://mail.example.org"),
        "disabled_services": Key(_list, "", "optional services not started (comma list), e.g. calendar, messenger;"
                                 " names as in /api/health; the http core cannot be disabled"),
    },
    "database": {
        "url": Key(_str, "sqlite:///tau.db", "sqlite:///PATH or postgresql://user:pass@host:5432/db"),
        "pool_min": Key(_int, "1", "PostgreSQL: connections kept open", minimum=1),
        "pool_max": Key(_int, "8", "PostgreSQL: most connections at once", minimum=1),
        "statement_timeout_ms": Key(_int, "30000", "longest one SQL statement of a request may run, ms;"
                                    " over it: IMAP NO [LIMIT], HTTP 503 (0: no limit)", minimum=0),
        "background_timeout_ms": Key(_int, "600000", "the same for background work (queues, maintenance),"
                                     " ms (0: no limit)", minimum=0),
        "user_share": Key(_int, "0", "most transactions one user may have in the pool at once"
                          " (0: half the pool, at least 1)", minimum=0),
        "busy_timeout_ms": Key(_int, "5000", "SQLite: how long a write waits for another process's lock"
                               " before tau answers 503 (and fails fast until the lock is gone), ms", minimum=1),
    },
    "blobs": {
        "backend": Key(_str, "local", "local | s3"),
        "path": Key(_str, "blobs", "local backend: folder, relative to data_dir"),
        "s3_endpoint": Key(_str, "", "s3 backend: host:port"),
        "s3_access_key": Key(_str, "", "s3 backend: access key"),
        "s3_secret_key": Key(_str, "", "s3 backend: secret key"),
        "s3_bucket": Key(_str, "tau", "s3 backend: bucket"),
        "s3_secure": Key(_bool, "true", "s3 backend: use https"),
        "orphan_grace": Key(_int, "3600", "seconds a blob nothing references is kept before the sweeper deletes it"
                            " (an upload in flight writes its blob before its row)", minimum=60),
        "sweep_interval": Key(_int, "3600", "seconds between sweeps for unreferenced blobs", minimum=10),
    },
    "dav": {
        "max_lock_timeout": Key(_int, "3600", "longest WebDAV lock granted, seconds; `Timeout: Infinite` and"
                                " longer requests get this", minimum=1),
    },
    "redis": {
        "url": Key(_str, "", "empty: single node; redis://host:6379/0 shares bus, presence, limits"),
    },
    "tls": {
        "certificate": Key(_str, "tls/cert.pem", "PEM certificate chain, relative to data_dir"),
        "private_key": Key(_str, "tls/key.pem", "PEM private key, relative to data_dir"),
    },
    "listen": {name: Key(_str, "", f"Twisted endpoint for {name}; empty disables") for name in LISTENERS},
    "limits": {
        "message_size": Key(_int, str(50 * 1024 * 1024), "largest mail accepted, bytes", minimum=1024),
        "requests_per_minute_ip": Key(_int, "6000", "HTTP requests per minute per client IP (0: off)", minimum=0),
        "requests_per_hour_user": Key(_int, "100000", "HTTP requests per hour per user (0: off)", minimum=0),
        "quota_bytes": Key(_int, str(10 * 1024**3), "default storage quota per user, bytes (0: none)", minimum=0),
        "request_body": Key(_int, str(1024 * 1024), "largest buffered HTTP request body (JSON, forms), bytes",
                            minimum=1024),
        "smtp_connections_per_ip": Key(_int, "50", "open SMTP connections (MX, submission) per client address;"
                                       " IPv6 per /64 (Postfix: 50)", minimum=1),
        "imap_connections_per_ip": Key(_int, "50", "open IMAP connections per client address, IPv6 per /64",
                                       minimum=1),
        "http_connections_per_ip": Key(_int, "100", "open HTTP connections per client address, IPv6 per /64",
                                       minimum=1),
        "connections_total": Key(_int, "0", "open connections on all listeners together (0: 80% of the"
                                 " open-file limit)", minimum=0),
        "trusted_networks": Key(_list, "127.0.0.0/8, ::1", "CIDR list never refused by the per-address"
                                " connection caps (a reverse proxy, the webmail host)"),
        "line_timeout": Key(_int, "60", "seconds a client may take to send one SMTP/IMAP command line or the"
                            " headers of one HTTP request, however the bytes trickle in", minimum=1),
        "data_timeout": Key(_int, "1800", "seconds a client may take to send one message (SMTP DATA/BDAT) or"
                            " one IMAP command with its literals", minimum=1),
        "password_hashes": Key(_int, "2", "password hashes (argon2id, 64 MiB each) computed at once", minimum=1),
        "password_hash_queue": Key(_int, "32", "password checks waiting for a hasher; more are refused"
                                   " (try again later)", minimum=0),
    },
    "auth": {
        "access_token_ttl": Key(_int, "3600", "seconds an access token (JWT) lives", minimum=60),
        "refresh_token_ttl": Key(_int, str(30 * 86400), "seconds a refresh token lives", minimum=300),
        "credential_cache_ttl": Key(_int, "300", "seconds a verified password stays cached (0: off)", minimum=0),
        "unregistered_oauth_clients": Key(_bool, "true", "an unregistered client_id counts as a native public app"
                                          " (loopback redirects only); false: only `tau oauth client add` ones"),
        "session_ttl": Key(_int, str(12 * 3600), "seconds a browser session (the admin page's HttpOnly cookie) "
                           "lasts without use; each refresh extends it", minimum=300),
        "revocation_poll": Key(_int, "2", "seconds between checks for revoked sessions (1-5); a revoked"
                               " session's access tokens are refused on every node within twice this", minimum=1),
    },
    "ldap": {
        "url": Key(_str, "", "empty: local accounts only"),
        "bind_dn": Key(_str, "", "service account DN"),
        "bind_password": Key(_str, "", "service account password"),
        "base_dn": Key(_str, "", "where users are searched"),
        "user_filter": Key(_str, "(mail={user})", "filter; {user} is the login address"),
        "admin_group": Key(_str, "", "DN of a group (groupOfNames member / memberOf) whose members are admins"),
        "cache_ttl": Key(_int, "60", "seconds a successful directory bind stays cached (0: off)", minimum=0),
        "timeout": Key(_int, "5", "seconds to wait for the directory", minimum=1),
    },
    "outbound": {
        "smarthost": Key(_str, "", "relay all outbound mail through host:port (empty: deliver by MX lookup)"),
        "smarthost_user": Key(_str, "", "smarthost AUTH PLAIN user (empty: no AUTH)"),
        "smarthost_password": Key(_str, "", "smarthost AUTH password"),
        "smarthost_tls": Key(_str, "verify", "smarthost TLS: verify (STARTTLS, certificate checked) | starttls"
                             " (STARTTLS, not checked) | none"),
        "lifetime": Key(_int, str(5 * 86400), "seconds a message is retried before it bounces", minimum=60),
        "delay_warning": Key(_int, str(4 * 3600), "seconds after which the sender gets a delay notice (0: off)",
                             minimum=0),
        "retry_base": Key(_int, "300", "first retry delay, seconds; doubles per attempt", minimum=1),
        "retry_max": Key(_int, "14400", "longest retry delay, seconds", minimum=1),
        "resolver": Key(_str, "", "host:port of the DNS server to ask (empty: /etc/resolv.conf)"),
        "connect_timeout": Key(_int, "30", "seconds to connect to a remote MX", minimum=1),
        "command_timeout": Key(_int, "300", "seconds to wait for a reply (RFC 5321 4.5.3.2)", minimum=1),
        "max_per_domain": Key(_int, "10", "concurrent connections to one destination domain", minimum=1),
        "concurrency": Key(_int, "20", "concurrent deliveries in total", minimum=1),
        "lease": Key(_int, "900", "seconds a claimed queue row stays ours before another worker may retry it",
                     minimum=1),
        "poll_interval": Key(_int, "5", "seconds between queue scans when idle", minimum=1),
        "port": Key(_int, "25", "TCP port of remote MX hosts (tests use another)", minimum=1),
        "tls_ca_file": Key(_str, "", "PEM CA bundle for verified TLS (empty: the system's)"),
        "mta_sts_host": Key(_str, "", "tests: fetch every MTA-STS policy from this host:port instead"),
        "helo": Key(_str, "", "name sent in EHLO (empty: [tau] hostname)"),
    },
    "dkim": {
        "selector": Key(_str, "tau", "DKIM selector for keys made by `tau dkim keygen`"),
        "algorithm": Key(_str, "rsa", "key type for `tau dkim keygen`: rsa | ed25519"),
        "keys_dir": Key(_str, "dkim", "folder of DKIM keys, relative to data_dir"),
        "sign": Key(_bool, "true", "sign outgoing mail for domains that have a key"),
        "verify": Key(_bool, "true", "verify DKIM signatures on inbound MX mail"),
    },
    "trust": {
        "spf": Key(_bool, "true", "check SPF (RFC 7208) on inbound MX mail; fail is refused"),
        "dmarc": Key(_bool, "true", "apply DMARC (RFC 7489): reject refused, quarantine to Junk"),
        "timeout": Key(_int, "20", "seconds all DNS checks of one message may take", minimum=1),
        "authserv_id": Key(_str, "", "authserv-id in Authentication-Results (empty: [tau] hostname)"),
    },
    "spam": {
        "rspamd_url": Key(_str, "", "Rspamd controller/normal worker base URL, e.g. http://127.0.0.1:11333"
                          " (empty: no spam filtering)"),
        "reject_score": Key(_str, "15", "score at which mail is refused (550 5.7.1)"),
        "junk_score": Key(_str, "6", "score at which mail goes to Junk"),
        "timeout": Key(_int, "15", "seconds to wait for Rspamd; on timeout the mail is accepted", minimum=1),
    },
    "turn": {
        "uris": Key(_list, "", "turn:host:3478?transport=udp, ... (comma list)"),
        "shared_secret": Key(_str, "", "coturn static-auth-secret"),
        "ttl": Key(_int, "86400", "seconds a TURN credential lives", minimum=60),
    },
    "connect": {
        "sfu": Key(_bool, "true", "run aiortc media workers for group calls (needs the `connect` extra)"),
        "sfu_workers": Key(_int, "1", "media worker processes", minimum=1),
    },
    "flows": {
        "chat_digest_after": Key(_int, "3600", "seconds a user must be offline, with chat messages unread that long,"
                                 " before they are summarised by email (0: off)", minimum=0),
        "attachment_link_threshold": Key(_int, str(10 * 1024 * 1024), "outgoing attachments larger than this many"
                                         " bytes go to the sender's files and are sent as a share link (0: off)",
                                         minimum=0),
    },
}


@dataclass
class Config:
    """A validated configuration. ``get(section, key)`` returns the parsed value."""

    path: str
    values: dict[str, dict[str, Any]] = field(default_factory=dict)

    def get(self, section: str, key: str) -> Any:
        return self.values[section][key]

    def __getitem__(self, section: str) -> dict[str, Any]:
        return self.values[section]

    @property
    def base_dir(self) -> Path:
        return Path(self.path).resolve().parent

    @property
    def data_dir(self) -> Path:
        return (self.base_dir / self.get("tau", "data_dir")).resolve()

    def data_path(self, relative: str) -> Path:
        """A path from the config, relative paths taken from data_dir."""
        return (self.data_dir / relative).resolve()

    @property
    def database_url(self) -> str:
        url: str = self.get("database", "url")
        if url.startswith("sqlite:///"):
            rest = url[len("sqlite:///"):]
            if rest == ":memory:":
                return url
            return "sqlite:///" + str(self.data_path(rest))
        return url

    def error(self, section: str, key: str | None, message: str) -> ConfigError:
        return ConfigError(self.path, section, key, message)


def load_config(path: str | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read, override from the environment, and validate. Raises ConfigError."""
    environ = os.environ if environ is None else environ
    path = path or environ.get("TAU_CONFIG") or DEFAULT_CONFIG
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    try:
        with open(path, encoding="utf-8") as fh:
            parser.read_file(fh)
    except FileNotFoundError:
        raise ConfigError(path, None, None, "no such file (run `tau init DATA_DIR` or pass --config)")
    except PermissionError:
        raise ConfigError(path, None, None, "permission denied")
    except configparser.Error as exc:
        raise ConfigError(path, None, None, "not a valid INI file: " + str(exc).splitlines()[0])
    except UnicodeDecodeError:
        raise ConfigError(path, None, None, "not UTF-8 text")
    raw: dict[str, dict[str, str]] = {}
    for section in parser.sections():
        if section not in SCHEMA:
            raise ConfigError(path, section, None, f"unknown section (known: {', '.join(SCHEMA)})")
        for key, value in parser.items(section):
            if key not in SCHEMA[section]:
                raise ConfigError(path, section, key, "unknown key")
            raw.setdefault(section, {})[key] = value
    for section, keys in SCHEMA.items():
        for key in keys:
            env = f"TAU_{section}_{key}".upper()
            if env in environ:
                raw.setdefault(section, {})[key] = environ[env]
    config = Config(path=path)
    for section, keys in SCHEMA.items():
        out: dict[str, Any] = {}
        for key, spec in keys.items():
            text = raw.get(section, {}).get(key, spec.default)
            try:
                value = spec.parse(text)
            except ValueError as exc:
                raise ConfigError(path, section, key, f"invalid value {text!r}: {exc}")
            if spec.minimum is not None and value < spec.minimum:
                raise ConfigError(path, section, key, f"must be at least {spec.minimum}")
            out[key] = value
        config.values[section] = out
    _validate(config)
    return config


def _validate(config: Config) -> None:
    url = config.get("database", "url")
    if not (url.startswith("sqlite:///") or url.startswith(("postgresql://", "postgres://"))):
        raise config.error("database", "url", f"unsupported URL {url!r} (sqlite:///PATH or postgresql://...)")
    if config.get("database", "pool_min") > config.get("database", "pool_max"):
        raise config.error("database", "pool_min", "greater than pool_max")
    backend = config.get("blobs", "backend")
    if backend not in ("local", "s3"):
        raise config.error("blobs", "backend", f"unknown backend {backend!r} (local | s3)")
    if backend == "s3":
        for key in ("s3_endpoint", "s3_bucket"):
            if not config.get("blobs", key):
                raise config.error("blobs", key, "required when backend = s3")
    redis = config.get("redis", "url")
    if redis and not redis.startswith(("redis://", "rediss://", "unix://")):
        raise config.error("redis", "url", f"unsupported URL {redis!r} (redis://host:port/db)")
    if redis and url.startswith("sqlite:"):
        raise config.error("redis", "url", "Redis means several nodes, and SQLite serves one node only; "
                           "use PostgreSQL or leave [redis] url empty")
    from tau.endpoints import validate_endpoint

    for name in LISTENERS:
        desc = config.get("listen", name)
        if desc:
            problem = validate_endpoint(desc)
            if problem:
                raise config.error("listen", name, problem)
    for net in config.get("limits", "trusted_networks"):
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            raise config.error("limits", "trusted_networks", f"not a network: {net!r} (CIDR, e.g. 10.0.0.0/8)")


def render_ini(values: Mapping[str, Mapping[str, str]], annotated: bool = True) -> str:
    """Write an INI file with every section; given values override the defaults shown."""
    lines: list[str] = []
    for section, keys in SCHEMA.items():
        lines.append(f"[{section}]")
        for key, spec in keys.items():
            if annotated:
                lines.append(f"# {spec.help}")
            value = values.get(section, {}).get(key, spec.default)
            lines.append(f"{key} = {value}")
        lines.append("")
    return "\n".join(lines)
