"""Fixtures for operations tests: a real slapd on loopback (skipped with the reason if missing)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import slapd as slapd_mod

PEOPLE = [("bob", "bob@example.test", "bob-ldap-Pa55", "Bob Builder"),
          ("carol", "carol@example.test", "carol-ldap-Pa55", "Carol Admin")]


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[slapd_mod.Slapd]:
    reason = slapd_mod.available()
    if reason:
        pytest.skip(reason)
    entries = "".join(slapd_mod.person(*p) for p in PEOPLE)
    carol = f"uid=carol,ou=people,{slapd_mod.SUFFIX}"
    server = slapd_mod.Slapd(tmp_path_factory.mktemp("slapd"), entries, admins=[carol])
    try:
        server.start()
    except Exception as exc:  # e.g. a sandbox that forbids it
        pytest.skip(f"slapd cannot run here: {exc}")
    yield server
    server.stop()


@pytest.fixture
def ldap_registry(tmp_path: Path, db_url: str, slapd: slapd_mod.Slapd) -> Iterator:
    from tau.auth import ldap
    from tests.support.harness import make_registry

    reg = make_registry(tmp_path / "tau", db_url, ldap=slapd.settings())
    ldap.install(reg, None)
    yield reg
    reg.db.close()
