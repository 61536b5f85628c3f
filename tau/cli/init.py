"""``tau init DATA_DIR --domain D``: a working installation in one step (INTERFACE.md, Install and run).

Writes ``tau.ini`` and everything it points to, then loads that file the way the daemon will
(so ``TAU_DATABASE_URL`` and friends apply: that is how a PostgreSQL install is initialised),
migrates and adds the first domain. It never overwrites data: a second run refuses unless
``--force``, and even then only ``tau.ini`` is rewritten; an existing secret, database, blob
folder or TLS pair is kept as it is.
"""

from __future__ import annotations

import argparse
import os
import socket
from pathlib import Path
from typing import Any

from tau.auth import accounts
from tau.cli.common import EXIT_FAILED, EXIT_OK, CliError, add_parser, open_database
from tau.config import Config, ConfigError, load_config, render_ini
from tau.keys import generate_secret
from tau.net.endpoints import endpoint_address
from tau.storage.migrate import migrate

PORTS = {  # listener: (scheme, default port, --dev-ports port)
    "smtp": ("tcp", 25, 10025),
    "submission": ("tcp", 587, 10587),
    "submissions": ("ssl", 465, 10465),
    "imap": ("tcp", 143, 10143),
    "imaps": ("ssl", 993, 10993),
    "http": ("tcp", 8080, 18080),
    "https": ("ssl", 8443, 18443),
    "managesieve": ("tcp", 4190, 14190),
}


def register(subparsers: Any) -> None:
    parser = add_parser(subparsers, "init", "create a data folder with a working configuration",
                        "Create DATA_DIR with tau.ini, a secret, the database, a blob folder and a "
                        "self-signed TLS certificate, then add the first domain.")
    parser.add_argument("data_dir", metavar="DATA_DIR")
    parser.add_argument("--domain", required=True, help="first mail domain, e.g. example.org")
    parser.add_argument("--hostname", help="name this server answers to (default: this machine's FQDN)")
    parser.add_argument("--dev-ports", action="store_true",
                        help="listen on ports 10025, 10587, 10465, 10143, 10993, 18080, 18443, 14190 of 127.0.0.1")
    parser.add_argument("--database-url", metavar="URL",
                        help="postgresql://user:pass@host:5432/db (default: SQLite in DATA_DIR)")
    parser.add_argument("--force", action="store_true",
                        help="rewrite an existing tau.ini (data is never overwritten)")
    parser.set_defaults(handler=run)


def listen_values(dev_ports: bool) -> dict[str, str]:
    """INTERFACE.md, Configuration: the listener defaults ``tau init`` writes."""
    if dev_ports:
        return {name: f"{scheme}:{dev}:interface=127.0.0.1" for name, (scheme, _, dev) in PORTS.items()}
    return {name: f"{scheme}:{port}" for name, (scheme, port, _) in PORTS.items()}


def default_hostname() -> str:
    name = socket.getfqdn().strip().rstrip(".")
    return name or "localhost"


def default_public_url(config: Config, dev_ports: bool) -> str:
    """``http://127.0.0.1:PORT`` for a development install (the http listener, on this machine);
    else ``https://HOSTNAME``, with the https listener's port unless that is 443 (``http://`` and
    the http port when only that one is configured)."""
    http = endpoint_address(config.listen.http)[1] if config.listen.http else None
    https = endpoint_address(config.listen.https)[1] if config.listen.https else None
    if dev_ports and http:
        return f"http://127.0.0.1:{http}"
    if https or not http:
        return f"https://{config.tau.hostname}" + (f":{https}" if https and https != 443 else "")
    return f"http://{config.tau.hostname}" + (f":{http}" if http != 80 else "")


def run(args: argparse.Namespace) -> int:
    domain = accounts.normalize_domain(args.domain)
    hostname = (args.hostname or default_hostname()).strip().lower().rstrip(".")
    if not hostname or any(c.isspace() or c in ",:/@" for c in hostname):
        raise CliError(f"not a valid hostname: {hostname!r}")
    data_dir = Path(args.data_dir).expanduser().absolute()
    # An explicit --config says where the file goes (e.g. /etc/tau/tau.ini); $TAU_CONFIG does not.
    ini_path = Path(args.config).expanduser().absolute() if getattr(args, "config", None) else data_dir / "tau.ini"
    if ini_path.exists() and not args.force:
        raise CliError(f"{ini_path} exists already; refusing to touch an installed tau "
                       "(--force rewrites tau.ini and keeps all data)", EXIT_FAILED)
    made_dir = not data_dir.exists()
    data_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
    if made_dir:
        data_dir.chmod(0o750)
    ini_path.parent.mkdir(parents=True, exist_ok=True)

    values = {
        "tau": {"hostname": hostname, "domains": domain, "data_dir": str(data_dir), "secret_file": "secret"},
        "database": {"url": args.database_url or f"sqlite:///{data_dir / 'tau.db'}"},
        "blobs": {"path": "blobs"},
        "tls": {"certificate": "tls/cert.pem", "private_key": "tls/key.pem"},
        "listen": listen_values(args.dev_ports),
    }
    config = _write_config(ini_path, render_ini(values))
    if not config.tau.public_url:  # links (shares, calls, invitations, digests) open where tau listens
        values["tau"]["public_url"] = default_public_url(config, args.dev_ports)
        config = _write_config(ini_path, render_ini(values))
    report: list[tuple[str, str]] = [("config", f"{ini_path} (written)")]

    secret = config.data_path(config.tau.secret_file)
    if secret.exists():
        report.append(("secret", f"{secret} (kept)"))
    else:
        secret.parent.mkdir(parents=True, exist_ok=True)
        generate_secret(secret)
        report.append(("secret", f"{secret} (new, mode 0600)"))

    if config.blobs.backend == "local":
        blobs = config.data_path(config.blobs.path)
        kept = blobs.is_dir()
        blobs.mkdir(mode=0o750, parents=True, exist_ok=True)
        report.append(("blobs", f"{blobs} ({'kept' if kept else 'new'})"))
    else:
        bucket, endpoint = config.blobs.s3_bucket, config.blobs.s3_endpoint
        report.append(("blobs", f"s3 bucket {bucket} at {endpoint}"))

    report.append(("tls", _tls(config, hostname)))

    _create_sqlite_file(config)
    with open_database(config, create=True, check_schema=False) as db:
        applied = migrate(db)
        db.run("init_domain", accounts.ensure_domain, domain)
        where = db.engine.describe()
    schema = ", ".join(f"{d.version:04d}_{d.name}" for d in applied) or "already up to date"
    report.append(("database", f"{where} (schema: {schema})"))
    report.append(("domain", domain))

    print(f"tau is set up in {data_dir}:")
    width = max(len(label) for label, _ in report)
    for label, text in report:
        print(f"  {label.ljust(width)}  {text}")
    print()
    print("Next steps:")
    print(f"  tau user add postmaster@{domain} --config {ini_path}")
    print(f"  twistd -n tau --config {ini_path}")
    print(f"  tau check --config {ini_path}    # DNS records to publish")
    return EXIT_OK


def _write_config(path: Path, text: str) -> Config:
    """Validate the new file (with env overrides) before it replaces anything, mode 0640."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        try:
            config = load_config(str(tmp))
        except ConfigError as exc:
            raise ConfigError(str(path), exc.section, exc.key, exc.message) from None
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    config.path = str(path)
    return config


def _create_sqlite_file(config: Config) -> None:
    """An SQLite file holds password hashes: make it 0640 before SQLite makes it 0644."""
    url = config.database_url
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        path = Path(url[len("sqlite:///"):])
        if path.parent.is_dir() and not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640))


def _tls(config: Config, hostname: str) -> str:
    cert = config.data_path(config.tls.certificate)
    key = config.data_path(config.tls.private_key)
    if cert.exists() or key.exists():
        if not (cert.exists() and key.exists()):
            missing = key if cert.exists() else cert
            return f"{cert} (kept; {missing} is missing: `tau check` will fail until you add it)"
        return f"{cert} (kept)"
    from tau.net.tls import make_self_signed

    make_self_signed(hostname, cert, key)  # creates tls/ (0700), key 0600, never overwrites
    return f"{cert} (new, self-signed for {hostname})"
