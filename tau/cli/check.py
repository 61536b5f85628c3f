"""``tau check``: is this installation ready to start, and what must DNS say about it?

Runs every check even after one fails, so one run lists everything to fix. An invalid config
is the exception: nothing else can be checked, so it is the usual one-line error with exit 2.
Exit 0 when every check passed (warnings allowed), 1 when one failed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import secrets
from collections.abc import Callable
from typing import Any

from tau.auth import accounts
from tau.cli import check_links, check_modes, dnslive, dnsrecords
from tau.cli.common import (
    DATABASE_ERRORS,
    EXIT_FAILED,
    EXIT_OK,
    add_parser,
    connect,
    database_error,
    load,
)
from tau.config import LISTENERS, Config
from tau.keys import SecretError, load_secret
from tau.storage.engines.base import DatabaseUnavailable
from tau.storage.migrate import schema_status

OK, WARN, FAIL = "ok", "warn", "FAIL"
EXPIRY_WARNING_DAYS = 14


def register(subparsers: Any) -> None:
    parser = add_parser(subparsers, "check", "check config, database, blobs and TLS; print DNS records",
                        "Validate the configuration, reach the database, check that the blob folder is "
                        "writable and the TLS files are usable, and print the DNS records to publish.")
    parser.add_argument("--live", action="store_true",
                        help="look every DNS record up ([outbound] resolver) and say which are missing or wrong")
    parser.add_argument("--json", action="store_true",
                        help='print one JSON object: {"ok", "failed", "checks": [{"status", "name", '
                             '"message"}], "dns": [{"name", "type", "value"}], "notes"}')
    parser.add_argument("--backups", metavar="DIR", default=check_modes.DEFAULT_BACKUPS,
                        help="folder of backup archives whose modes to check (default %(default)s)")
    parser.set_defaults(handler=run)


class Report:
    def __init__(self, quiet: bool = False) -> None:
        self.failed = 0
        self.quiet = quiet
        self.checks: list[dict[str, str]] = []

    def line(self, status: str, name: str, text: str) -> None:
        if status == FAIL:
            self.failed += 1
        self.checks.append({"status": status.lower(), "name": name, "message": text})
        if not self.quiet:
            print(f"{status:<5} {name:<9} {text}")


def run(args: argparse.Namespace) -> int:
    config = load(args)
    report = Report(quiet=args.json)
    report.line(OK, "config", config.path)
    domains = set(config.tau.domains)
    checks: list[Callable[[Config, Report], set[str] | None]] = [
        _database, _secret, _blobs, _tls, _listen, _at_rest]
    for check in checks:
        found = check(config, report)
        if found:
            domains |= found
    check_links.check(config, report)
    check_modes.check(config, report, getattr(args, "backups", check_modes.DEFAULT_BACKUPS))
    if args.json:
        rows = dnsrecords.all_records(config, sorted(domains)) if domains else []
        if rows and args.live:
            dnslive.check(config, rows, report)
        notes = [f"DKIM for {d}: run `tau dkim keygen {d}`" for d in sorted(domains)
                 if not any(r.name.endswith(f"._domainkey.{d}.") for r in rows)]
        if not domains:
            notes.append("No domains yet: `tau domain add DOMAIN`, then run `tau check` again for its DNS records.")
        print(json.dumps({"ok": not report.failed, "failed": report.failed, "checks": report.checks,
                          "dns": [{"name": r.name, "type": r.type, "value": r.value} for r in rows],
                          "notes": notes}, indent=2))
        return EXIT_FAILED if report.failed else EXIT_OK
    _dns(config, sorted(domains), report, args.live)
    print()
    if report.failed:
        print(f"{report.failed} check{'s' if report.failed > 1 else ''} failed")
        return EXIT_FAILED
    print("all checks passed")
    return EXIT_OK


def _database(config: Config, report: Report) -> set[str] | None:
    try:
        db = connect(config)
    except DatabaseUnavailable as exc:
        report.line(FAIL, "database", str(exc))
        return None
    where = db.engine.describe()
    try:
        current, code = schema_status(db)
        domains = None
        if current == code:
            report.line(OK, "database", f"{where}, schema version {current}")
            domains = {str(d["name"]) for d in db.run("cli_check_domains", accounts.list_domains, readonly=True)}
        elif current < code:
            report.line(WARN, "database", f"{where}, schema version {current}, this tau has {code}: "
                        "`tau migrate` (or the daemon at start) will upgrade it")
        else:
            report.line(FAIL, "database", f"{where}, schema version {current} is newer than this tau ({code})")
        return domains
    except DATABASE_ERRORS as exc:  # a query failing here is a finding, not a crash
        report.line(FAIL, "database", f"{where}: {database_error(exc)}")
        return None
    finally:
        db.close()


def _at_rest(config: Config, report: Report) -> None:
    """Rows of user content not sealed under their user's active key yet (issue 16): in plaintext
    from before the migration, or under a key ``tau keys rotate`` retired. Silent when the
    database check already failed or the schema is not current."""
    from tau.atrest.convert import pending_total
    from tau.registry import Registry

    try:
        db = connect(config)
    except DatabaseUnavailable:
        return
    try:
        current, code = schema_status(db)
        if current != code:
            return
        pending = db.run("cli_check_atrest", pending_total, Registry(config).atrest_tables, readonly=True)
    except DATABASE_ERRORS as exc:
        report.line(FAIL, "at-rest", database_error(exc))
        return
    finally:
        db.close()
    left = {name: n for name, n in pending.items() if n}
    if left:
        report.line(WARN, "at-rest", f"{sum(left.values())} rows not sealed under the active key yet ("
                    + ", ".join(f"{k} {v}" for k, v in sorted(left.items()))
                    + "): the running daemon's converter seals them")
    else:
        report.line(OK, "at-rest", "every row of user content is sealed")


def _secret(config: Config, report: Report) -> None:
    path = config.data_path(config.tau.secret_file)
    try:
        load_secret(path)
    except SecretError as exc:
        report.line(FAIL, "secret", str(exc))
    else:
        report.line(OK, "secret", str(path))


def _blobs(config: Config, report: Report) -> None:
    if config.blobs.backend != "local":
        report.line(WARN, "blobs", f"s3 bucket {config.blobs.s3_bucket} at "
                    f"{config.blobs.s3_endpoint}: not checked by `tau check`")
        return
    path = config.data_path(config.blobs.path)
    if not path.is_dir():
        report.line(FAIL, "blobs", f"{path} is not a folder")
        return
    probe = path / f".tau-check-{secrets.token_hex(8)}"
    try:  # os.access lies for root and on some network filesystems: really write
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        probe.unlink()
    except OSError as exc:
        report.line(FAIL, "blobs", f"{path} is not writable: {exc.strerror or exc}")
    else:
        report.line(OK, "blobs", f"{path} is writable")


def _tls(config: Config, report: Report) -> None:
    from tau.net.tls import TLSConfigError, load_tls

    cert = config.data_path(config.tls.certificate)
    key = config.data_path(config.tls.private_key)
    try:
        info = load_tls(cert, key).describe()
    except TLSConfigError as exc:
        report.line(FAIL, "tls", str(exc))
        return
    expires = datetime.datetime.fromisoformat(info["not_after"])
    days = (expires - datetime.datetime.now(datetime.UTC)).days
    names = ", ".join(n.split(":", 1)[1] for n in info["san"]) or info["subject"]
    text = (f"{cert}: {names}; {'self-signed, ' if info['self_signed'] else ''}"
            f"expires {expires:%Y-%m-%d} ({'expired' if days < 0 else f'in {days} days'})")
    hostname = config.tau.hostname
    if days < 0:
        report.line(FAIL, "tls", text)
    elif days < EXPIRY_WARNING_DAYS:
        report.line(WARN, "tls", text)
    elif not _covers(info["san"], hostname):
        report.line(WARN, "tls", f"{text}; does not name the hostname {hostname}")
    else:
        report.line(OK, "tls", text)


def _covers(san: list[str], hostname: str) -> bool:
    for entry in san:
        kind, _, name = entry.partition(":")
        if kind != "DNS":
            if name == hostname:
                return True
            continue
        if name == hostname or (name.startswith("*.") and hostname.partition(".")[2] == name[2:]):
            return True
    return False


def _listen(config: Config, report: Report) -> None:
    enabled = [f"{name} {config.listen.endpoint(name)}" for name in LISTENERS if config.listen.endpoint(name)]
    if enabled:
        report.line(OK, "listen", ", ".join(enabled))
    else:
        report.line(WARN, "listen", "no listener enabled in [listen]: the daemon would serve nothing")


def _dns(config: Config, domains: list[str], report: Report, live: bool) -> None:
    print()
    if not domains:
        print("No domains yet: `tau domain add DOMAIN`, then run `tau check` again for its DNS records.")
        return
    print("DNS records to publish:")
    rows = dnsrecords.all_records(config, domains)
    dnsrecords.print_records(config, domains, rows)
    if live:
        print()
        print(f"DNS as {config.outbound.resolver or 'the system resolver'} answers it:")
        dnslive.check(config, rows, report)
