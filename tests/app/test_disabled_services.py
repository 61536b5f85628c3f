"""``[tau] disabled_services`` leaves optional plugins out: with each one left out in turn the
daemon starts, answers ``/api/health`` and the remaining services listen (issue 14: every
component comes from the registry, so no plugin needs another optional one, or an order)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tau.app.plugins import CORE, enabled, optional_names
from tau.config import ConfigError, load_config
from tests.support.daemon import TauDaemon
from tests.support.harness import write_config

OPTIONAL = optional_names()
LISTENERS = ("smtp", "submission", "imap", "http")
#: the listeners a plugin owns: they stay closed when it is left out
OWNED = {"smtp": ("smtp", "submission"), "imap": ("imap",)}
#: plugins that report themselves only when configured (``[ldap] url``)
UNCONFIGURED = {"ldap"}


def test_every_plugin_but_the_core_can_be_left_out() -> None:
    assert "http" in CORE and "http" not in OPTIONAL
    assert {"smtp", "imap", "outbound", "calendar", "files", "messenger", "connect", "flows"} <= set(OPTIONAL)


@pytest.mark.parametrize(("value", "named"), [("calendar, nope", "nope"), ("http", "http")])
def test_an_unknown_or_core_name_stops_the_start(tmp_path: Path, value: str, named: str) -> None:
    path = write_config(tmp_path, f"sqlite:///{tmp_path}/tau.db", tau={"disabled_services": value})
    with pytest.raises(ConfigError) as caught:
        enabled(load_config(str(path), environ={}))
    assert (caught.value.section, caught.value.key) == ("tau", "disabled_services")
    assert named in caught.value.message


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("disabled-services")
    TauDaemon(folder, listeners=LISTENERS).init()
    yield folder


@pytest.mark.e2e
@pytest.mark.parametrize("name", OPTIONAL)
def test_tau_starts_and_serves_with_one_optional_plugin_left_out(data: Path, name: str) -> None:
    listeners = tuple(key for key in LISTENERS if key not in OWNED.get(name, ()))
    daemon = TauDaemon(data, listeners=listeners, env={"TAU_TAU_DISABLED_SERVICES": name, "TAU_CONNECT_SFU": "false"})
    daemon.start("http")                       # waits until every remaining listener accepts
    try:
        status, _, body = daemon.http("GET", "/api/health")
        services = json.loads(body)["services"]
        assert status == 200, body
        assert services.get(name, "disabled") == "disabled", services
        running = set(OPTIONAL) - UNCONFIGURED - {name}
        assert {s: services.get(s) for s in running} == dict.fromkeys(running, "ok")
    finally:
        daemon.stop()
