"""The INI configuration: loading, env overrides, validation, one typed section per INI section.

Every key is declared once, as a typed field with its default and a line of help on the section's
frozen dataclass in ``tau.config_sections``; ``SCHEMA`` is derived from them, so that validation,
``etc/tau.ini`` and error messages all come from one place. Code reads ``config.limits.quota_bytes``.
``TAU_<SECTION>_<KEY>`` in the environment overrides the file (INTERFACE.md, Configuration). Errors
are ``ConfigError`` naming file, section and key; the CLI and the twistd plugin print them as one line and exit 2.
"""

from __future__ import annotations

import configparser
import difflib
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from tau.config_sections import (
    LISTENERS,
    SECTIONS,
    AuthSection,
    BlobsSection,
    ConnectSection,
    DatabaseSection,
    DavSection,
    DkimSection,
    FilesSection,
    FlowsSection,
    LdapSection,
    LimitsSection,
    ListenSection,
    MetricsSection,
    OutboundSection,
    RedisSection,
    Section,
    SpamSection,
    TauSection,
    TlsSection,
    TrustSection,
    TurnSection,
    default_text,
    human_size,
)

DEFAULT_CONFIG = "/etc/tau/tau.ini"


class ConfigError(Exception):
    """A configuration problem a person must fix; rendered as one line."""

    def __init__(self, file: str, section: str | None, key: str | None, message: str,
                 line: int | None = None) -> None:
        self.file, self.section, self.key, self.message, self.line = file, section, key, message, line
        where = file if line is None else f"{file}:{line}"
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


def _list(value: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in value.split(",") if p.strip())


_SIZE = re.compile(r"^\s*(\d+)\s*(?:([kmgt])(?:i?b)?|b)?\s*$", re.IGNORECASE)


def parse_size(value: str) -> int:
    """Bytes: ``1048576``, or with a binary unit ``512K``, ``50M``, ``5G``, ``1T`` (``MiB``/``MB`` too)."""
    m = _SIZE.match(value.replace("_", ""))
    if not m:
        raise ValueError("expected bytes, or a number with K, M, G or T (e.g. 50M)")
    factor: int = 1024 ** " kmgt".index((m.group(2) or " ").lower())
    return int(m.group(1)) * factor


_PARSERS: dict[object, Callable[[str], Any]] = {str: _str, int: _int, bool: _bool, tuple[str, ...]: _list}


@dataclass(frozen=True)
class Key:
    parse: Callable[[str], Any]
    default: str
    help: str
    minimum: int | None = None
    secret: bool = False
    size: bool = False

    def text(self, value: Any) -> str:
        """A typed value as the INI file writes it (sizes with their unit)."""
        return human_size(value) if self.size else default_text(value)


def _keys(cls: type[Section]) -> dict[str, Key]:
    hints = get_type_hints(cls)
    out = {}
    for f in fields(cls):
        sized = bool(f.metadata["size"])
        default = human_size(int(f.default)) if sized else default_text(f.default)  # type: ignore[arg-type]
        out[f.name] = Key(parse_size if sized else _PARSERS[hints[f.name]], default, f.metadata["help"],
                          f.metadata["minimum"], bool(f.metadata["secret"]), sized)
    return out


#: section -> key -> how to parse it, its default as INI text, its help; derived from ``SECTIONS``
SCHEMA: dict[str, dict[str, Key]] = {section: _keys(cls) for section, cls in SECTIONS.items()}


@dataclass
class Config:
    """A validated configuration: one typed, frozen section per INI section (``config.limits.quota_bytes``)."""

    path: str
    #: (section, key) -> the environment variable that set it (errors name it instead of the file)
    overrides: dict[tuple[str, str], str] = field(default_factory=dict)
    tau: TauSection = field(default_factory=TauSection)
    database: DatabaseSection = field(default_factory=DatabaseSection)
    blobs: BlobsSection = field(default_factory=BlobsSection)
    dav: DavSection = field(default_factory=DavSection)
    redis: RedisSection = field(default_factory=RedisSection)
    tls: TlsSection = field(default_factory=TlsSection)
    listen: ListenSection = field(default_factory=ListenSection)
    limits: LimitsSection = field(default_factory=LimitsSection)
    auth: AuthSection = field(default_factory=AuthSection)
    ldap: LdapSection = field(default_factory=LdapSection)
    outbound: OutboundSection = field(default_factory=OutboundSection)
    dkim: DkimSection = field(default_factory=DkimSection)
    trust: TrustSection = field(default_factory=TrustSection)
    spam: SpamSection = field(default_factory=SpamSection)
    turn: TurnSection = field(default_factory=TurnSection)
    connect: ConnectSection = field(default_factory=ConnectSection)
    flows: FlowsSection = field(default_factory=FlowsSection)
    files: FilesSection = field(default_factory=FilesSection)
    metrics: MetricsSection = field(default_factory=MetricsSection)

    @property
    def base_dir(self) -> Path:
        return Path(self.path).resolve().parent

    @property
    def data_dir(self) -> Path:
        return (self.base_dir / self.tau.data_dir).resolve()

    def data_path(self, relative: str) -> Path:
        """A path from the config, relative paths taken from data_dir."""
        return (self.data_dir / relative).resolve()

    @property
    def database_url(self) -> str:
        url: str = self.database.url
        if url.startswith("sqlite:///"):
            rest = url[len("sqlite:///"):]
            if rest == ":memory:":
                return url
            return "sqlite:///" + str(self.data_path(rest))
        return url

    def error(self, section: str, key: str | None, message: str, line: int | None = None) -> ConfigError:
        """An error about one key: names the environment variable when that set it, else the file."""
        if key is not None and (section, key) in self.overrides:
            return ConfigError(self.overrides[section, key], section, key, message)
        return ConfigError(self.path, section, key, message, line)


def load_config(path: str | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read, override from the environment, and validate. Raises ConfigError."""
    environ = os.environ if environ is None else environ
    path = path or environ.get("TAU_CONFIG") or DEFAULT_CONFIG
    raw, lines = _read(path)
    config = Config(path=path)
    for section, keys in SCHEMA.items():
        for key in keys:
            env = f"TAU_{section}_{key}".upper()
            if env in environ:
                raw.setdefault(section, {})[key] = environ[env]
                config.overrides[section, key] = env
    for section, keys in SCHEMA.items():
        out: dict[str, Any] = {}
        for key, spec in keys.items():
            text = raw.get(section, {}).get(key, spec.default)
            try:
                value = spec.parse(text)
                if spec.minimum is not None and value < spec.minimum:
                    raise ValueError(f"must be at least {spec.minimum}")
            except ValueError as exc:
                raise config.error(section, key, f"invalid value {text!r}: {exc}", lines.get((section, key)))
            out[key] = value
        setattr(config, section, SECTIONS[section](**out))
    _validate(config)
    return config


def _read(path: str) -> tuple[dict[str, dict[str, str]], dict[tuple[str, str], int]]:
    """The file's values by section and key, and the line each key is on; unknown names refused."""
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise ConfigError(path, None, None, "no such file (run `tau init DATA_DIR` or pass --config)")
    except PermissionError:
        raise ConfigError(path, None, None, "permission denied")
    except UnicodeDecodeError:
        raise ConfigError(path, None, None, "not UTF-8 text")
    try:
        parser.read_string(text, source=path)
    except configparser.Error as exc:
        line = _error_line(exc)
        content = text.splitlines()[line - 1].strip() if line and line <= len(text.splitlines()) else ""
        raise ConfigError(path, None, None, "not a valid INI file: " + _ini_problem(exc, content), line)
    lines = _key_lines(text)
    raw: dict[str, dict[str, str]] = {}
    for section in parser.sections():
        if section not in SCHEMA:
            raise ConfigError(path, section, None, "unknown section" + _suggest(section, list(SCHEMA)),
                              lines.get((section, "")))
        for key, value in parser.items(section):
            if key not in SCHEMA[section]:
                raise ConfigError(path, section, key, "unknown key" + _suggest(key, list(SCHEMA[section])),
                                  lines.get((section, key)))
            raw.setdefault(section, {})[key] = value
    return raw, lines


def _error_line(exc: configparser.Error) -> int | None:
    line = getattr(exc, "lineno", None)
    if line is None and isinstance(exc, configparser.ParsingError) and exc.errors:
        line = exc.errors[0][0]
    return int(line) if line is not None else None


def _ini_problem(exc: configparser.Error, content: str) -> str:
    if isinstance(exc, configparser.MissingSectionHeaderError):
        return f"a key before the first [section]: {content!r}"
    if isinstance(exc, configparser.ParsingError):
        return f"not `key = value` or `[section]`: {content!r}"
    if isinstance(exc, configparser.DuplicateOptionError):
        return f"[{exc.section}] {exc.option} given twice"
    if isinstance(exc, configparser.DuplicateSectionError):
        return f"[{exc.section}] given twice"
    return str(exc).splitlines()[0]


_SECTION_LINE = re.compile(r"^\s*\[([^\]]+)\]")
_KEY_LINE = re.compile(r"^([^#;\s=:][^=:]*?)\s*[=:]")


def _key_lines(text: str) -> dict[tuple[str, str], int]:
    """(section, key) -> line number; (section, "") is the section header."""
    out: dict[tuple[str, str], int] = {}
    section = ""
    for number, line in enumerate(text.splitlines(), 1):
        header = _SECTION_LINE.match(line)
        if header:
            section = header.group(1).strip()
            out.setdefault((section, ""), number)
            continue
        found = _KEY_LINE.match(line)
        if found:
            out.setdefault((section, found.group(1).strip().lower()), number)
    return out


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]}?)"
    return f" (known: {', '.join(known)})"


def _validate(config: Config) -> None:
    url = config.database.url
    if not (url.startswith("sqlite:///") or url.startswith(("postgresql://", "postgres://"))):
        raise config.error("database", "url", f"unsupported URL {url!r} (sqlite:///PATH or postgresql://...)")
    if config.database.pool_min > config.database.pool_max:
        raise config.error("database", "pool_min", "greater than pool_max")
    backend = config.blobs.backend
    if backend not in ("local", "s3"):
        raise config.error("blobs", "backend", f"unknown backend {backend!r} (local | s3)")
    if backend == "s3":
        for key in ("s3_endpoint", "s3_bucket"):
            if not getattr(config.blobs, key):
                raise config.error("blobs", key, "required when backend = s3")
    redis = config.redis.url
    if redis and not redis.startswith(("redis://", "rediss://", "unix://")):
        raise config.error("redis", "url", f"unsupported URL {redis!r} (redis://host:port/db)")
    if redis and url.startswith("sqlite:"):
        raise config.error("redis", "url", "Redis means several nodes, and SQLite serves one node only; "
                           "use PostgreSQL or leave [redis] url empty")
    from tau.net.endpoints import validate_endpoint

    for name in LISTENERS:
        desc = config.listen.endpoint(name)
        if desc:
            problem = validate_endpoint(desc)
            if problem:
                raise config.error("listen", name, problem)
    for section, key, nets in (("limits", "trusted_networks", config.limits.trusted_networks),
                               ("metrics", "allow", config.metrics.allow)):
        for net in nets:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise config.error(section, key, f"not a network: {net!r} (CIDR, e.g. 10.0.0.0/8)")


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


__all__ = [
    "DEFAULT_CONFIG", "LISTENERS", "SCHEMA", "SECTIONS", "AuthSection", "BlobsSection", "Config", "ConfigError",
    "ConnectSection", "DatabaseSection", "DavSection", "DkimSection", "FilesSection", "FlowsSection", "Key",
    "LdapSection", "LimitsSection", "ListenSection", "MetricsSection", "OutboundSection", "RedisSection", "Section",
    "SpamSection", "TauSection", "TlsSection", "TrustSection", "TurnSection", "load_config", "parse_size", "render_ini",
]
