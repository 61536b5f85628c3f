"""Issue 18 item 6: ``/api/health`` tells the truth. An optional part failing (LDAP, SFU, the Redis
bus, Rspamd) is ``degraded`` with HTTP 200 and the part and reason named; a required part (database,
blob store) failing is ``error`` with 503; ``/api/admin/health`` and the admin page say the same."""

from __future__ import annotations

import shutil
import socket
from typing import Any

from tau.app.host import AppHost
from tau.connect.calls import NoMedia
from tau.connect.service import sfu_health
from tests.support.http import assert_json_error


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def with_unreachable_directory(make_tau: Any) -> Any:
    from twisted.application.service import MultiService

    from tau.auth import ldap

    tau = make_tau(ldap={"url": f"ldap://127.0.0.1:{closed_port()}", "base_dn": "dc=example,dc=test",
                         "timeout": "1"})
    ldap.install(tau.registry, AppHost(tau.registry, MultiService(), MultiService()))
    return tau


def test_a_directory_down_is_degraded_not_unavailable(make_tau: Any) -> None:
    tau = with_unreachable_directory(make_tau)
    response = tau.get("/api/health")
    assert response.status == 200
    body = response.json()
    assert body["status"] == "degraded" and list(body["degraded"]) == ["ldap"] and body["degraded"]["ldap"]
    assert body["services"]["ldap"] == "degraded" and body["services"]["database"] == "ok"


def test_a_missing_sfu_is_degraded_and_says_why(tau: Any) -> None:
    tau.registry.health_checks["sfu"] = lambda: sfu_health(NoMedia())
    response = tau.get("/api/health")
    assert response.status == 200 and response.json()["status"] == "degraded"
    assert "group calls are refused" in response.json()["degraded"]["sfu"]
    assert response.json()["services"]["sfu"] == "degraded"


def test_a_redis_bus_outage_is_degraded(tau: Any) -> None:
    tau.registry.health_checks["bus"] = lambda: "degraded: Redis unreachable, events stay on this node"
    body = tau.get("/api/health").json()
    assert body["status"] == "degraded" and body["degraded"] == {"bus": "Redis unreachable, events stay on this node"}


def test_a_required_part_failing_is_an_error_even_when_optional_ones_fail_too(make_tau: Any) -> None:
    tau = with_unreachable_directory(make_tau)
    shutil.rmtree(tau.registry.blob_backend.root)
    body = assert_json_error(tau.get("/api/health"), 503, "unavailable")
    assert body["status"] == "error" and body["failing"] == ["blob_store"] and list(body["degraded"]) == ["ldap"]
    assert body["message"].startswith("blob_store: ") and "ldap: " in body["message"]


def test_every_part_answering_is_ok(tau: Any) -> None:
    tau.registry.health_checks["bus"] = lambda: "ok"
    response = tau.get("/api/health")
    assert response.status == 200 and response.json() == {"status": "ok", "services": response.json()["services"]}
    assert response.json()["services"]["bus"] == "ok"


def test_the_admin_health_names_the_reason_per_part(make_tau: Any) -> None:
    from tau.admin import service as admin_service
    from tests.support.harness import add_user

    tau = with_unreachable_directory(make_tau)
    add_user(tau.registry, "root@example.test", "secret-Pa55", fast_hash=True, is_admin=True)
    admin_service.install(tau.registry, tau.host)
    token = tau.token("root@example.test", "secret-Pa55")
    response = tau.get("/api/admin/health", token=token)
    assert response.status == 200 and response.json()["status"] == "degraded"
    assert set(response.json()["reasons"]) == {"ldap"} and response.json()["reasons"]["ldap"]
    script = tau.get("/admin/app.js").body
    assert b"healthstatus" in script and b"h.reasons" in script and b"Degraded" in script
