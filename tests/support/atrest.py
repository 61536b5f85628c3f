"""Encryption at rest, from the outside: every stored byte searched for markers a test wrote.

A marker is a string no code derives from anything else (random, lower case: case-folded
indexes would hold it lower-cased). ``leaks`` reads whole files (the SQLite database and its
``-wal``, blobs, anything else under a data directory), a ``pg_dump`` of a PostgreSQL database
and the members of a ``tau backup`` archive (decompressed), and returns where a marker appears.
"""

from __future__ import annotations

import gzip
import io
import secrets
import subprocess
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path


def marker(label: str = "m") -> str:
    return f"zq{label}{secrets.token_hex(6)}"


def _forms(markers: Iterable[str]) -> list[bytes]:
    out: list[bytes] = []
    for m in markers:
        out += [m.encode(), m.encode("utf-16-le")]
    return out


def tree_bytes(root: Path) -> Iterator[tuple[str, bytes]]:
    """(path, content) of every regular file under ``root``."""
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield str(path), path.read_bytes()


def pg_dump_bytes(url: str) -> Iterator[tuple[str, bytes]]:
    """The whole database as ``pg_dump`` writes it (plain SQL, data and schema)."""
    result = subprocess.run(["pg_dump", "--no-owner", url], capture_output=True, timeout=120, check=True)
    yield f"pg_dump {url}", result.stdout


def archive_bytes(path: Path) -> Iterator[tuple[str, bytes]]:
    """A backup archive, compressed and member by member (members themselves gunzipped when they are)."""
    raw = path.read_bytes()
    yield str(path), raw
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:*") as tar:
        for member in tar:
            fh = tar.extractfile(member)
            if fh is None:
                continue
            data = fh.read()
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            yield f"{path}:{member.name}", data


def leaks(markers: Iterable[str], *sources: Iterable[tuple[str, bytes]]) -> list[tuple[str, str]]:
    """(where, marker) for every marker found in any source (empty: nothing readable)."""
    wanted = list(markers)
    forms = {f: m for m in wanted for f in _forms([m])}
    found: list[tuple[str, str]] = []
    for source in sources:
        for where, data in source:
            found += [(where, m) for f, m in forms.items() if f in data]
    return found
