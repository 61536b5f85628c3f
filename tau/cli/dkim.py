"""``tau dkim keygen DOMAIN`` / ``tau dkim list``: DKIM keys (RFC 6376, RFC 8463) and their DNS records.

A key is written to ``DATA_DIR/dkim/DOMAIN/SELECTOR.ALGORITHM.key`` (mode 0600) and the TXT
record to publish at ``SELECTOR._domainkey.DOMAIN`` is printed. The daemon signs with every key a
domain has (an RSA and an Ed25519 key side by side is the RFC 8463 §3 recommendation) and picks up
new keys within a minute, without a restart.
"""

from __future__ import annotations

import argparse
from typing import Any

from tau.cli.common import EXIT_OK, CliError, add_action, add_group, load
from tau.mail.trust import dkim


def register(subparsers: Any) -> None:
    sub = add_group(subparsers, "dkim", "make DKIM keys and print their DNS records")
    p = add_action(sub, "keygen", "make a signing key for DOMAIN and print the TXT record to publish", keygen,
                   ("domain",), description="Make a DKIM key for DOMAIN (RSA 2048 by default, or Ed25519) "
                                            "and print the DNS TXT record.")
    p.add_argument("--selector", metavar="S", help="selector (default: [dkim] selector; ed25519 keys add '-ed')")
    p.add_argument("--algorithm", choices=("rsa", "ed25519"), help="key type (default: [dkim] algorithm)")
    p.add_argument("--force", action="store_true", help="replace an existing key with the same selector")
    add_action(sub, "list", "list DKIM keys and their TXT records", list_)


def keygen(args: argparse.Namespace) -> int:
    config = load(args)
    algorithm = args.algorithm or config.dkim.algorithm
    if algorithm not in ("rsa", "ed25519"):
        raise CliError(f"[dkim] algorithm must be rsa or ed25519, not {algorithm!r}")
    selector = args.selector or config.dkim.selector + ("-ed" if algorithm == "ed25519" else "")
    try:
        path, record = dkim.write_key(dkim.keys_dir(config), args.domain, selector, algorithm, args.force)
    except (ValueError, FileExistsError) as exc:
        raise CliError(str(exc))
    domain = args.domain.lower().rstrip(".")
    print(f"{selector}._domainkey.{domain}. IN TXT {_quoted(record)}")
    print(f"# key written to {path}", flush=True)
    return EXIT_OK


def list_(args: argparse.Namespace) -> int:
    config = load(args)
    for domain, keys in sorted(dkim.load_keys(dkim.keys_dir(config)).items()):
        for key in keys:
            record = dkim.txt_record(key.algorithm, dkim.public_from_private(key))
            print(f"{key.selector}._domainkey.{domain}. IN TXT {_quoted(record)}")
    return EXIT_OK


def _quoted(record: str) -> str:
    """TXT character-strings hold at most 255 octets (RFC 1035 §3.3.14): split long keys."""
    parts = [record[i:i + 250] for i in range(0, len(record), 250)]
    return " ".join(f'"{p}"' for p in parts)


def records(config: Any) -> list[tuple[str, str, str]]:
    """(name, type, value) for ``tau check``."""
    out = []
    for domain, keys in sorted(dkim.load_keys(dkim.keys_dir(config)).items()):
        for key in keys:
            out.append((f"{key.selector}._domainkey.{domain}.", "TXT",
                        _quoted(dkim.txt_record(key.algorithm, dkim.public_from_private(key)))))
    return out
