"""``tau config show [--all]``: the effective configuration, like Postfix's ``postconf -n``.

The file and ``TAU_<SECTION>_<KEY>`` overrides together, as INI text: only keys that differ from
their default unless ``--all``; a key set from the environment says so in a comment. Secrets
(passwords, secret keys, the password inside a URL) are masked, so the output can be pasted into
a bug report.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from tau.cli.common import EXIT_OK, add_action, add_group, load
from tau.config import SCHEMA, Config

MASK = "********"
_URL_PASSWORD = re.compile(r"(://[^/@:]*:)[^/@]*@")


def register(subparsers: Any) -> None:
    sub = add_group(subparsers, "config", "show the effective configuration")
    p = add_action(sub, "show", "print the effective configuration, secrets masked (like postconf -n)", show,
                   description="Print the configuration in effect (file and TAU_* environment overrides) "
                               "as INI text: the keys that differ from their defaults, or every key "
                               "with --all. Secrets are masked.")
    p.add_argument("--all", action="store_true", help="every key, defaults included")


def effective(config: Config, every: bool) -> list[tuple[str, str, str, str | None]]:
    """(section, key, INI text, environment variable or None) of each key to show."""
    rows = []
    for section, keys in SCHEMA.items():
        values = getattr(config, section)
        for key, spec in keys.items():
            value = getattr(values, key)
            if not every and value == spec.parse(spec.default):
                continue
            text = spec.text(value)
            if spec.secret and text:
                text = MASK
            text = _URL_PASSWORD.sub(rf"\g<1>{MASK}@", text)
            rows.append((section, key, text, config.overrides.get((section, key))))
    return rows


def show(args: argparse.Namespace) -> int:
    config = load(args)
    print(f"# {config.path}" + ("" if args.all else " (keys that differ from their defaults; --all for every key)"))
    current = None
    for section, key, text, env in effective(config, args.all):
        if section != current:
            print(f"\n[{section}]")
            current = section
        if env:
            print(f"# from {env}")
        print(f"{key} = {text}".rstrip())
    return EXIT_OK
