"""``/metrics`` is served only to ``[metrics] allow`` networks (default loopback and private
ranges); anyone else gets 403 JSON."""

from __future__ import annotations

from typing import Any

from tests.support.http import assert_json_error


def test_metrics_served_to_loopback_by_default(tau: Any) -> None:
    response = tau.get("/metrics")
    assert response.status == 200 and b"tau_mail_queue_messages" in response.body


def test_metrics_refused_outside_the_allowed_networks(make_tau: Any) -> None:
    tau = make_tau(metrics={"allow": "192.0.2.0/24, 2001:db8::/32"})
    body = assert_json_error(tau.get("/metrics"), 403, "forbidden")
    assert "[metrics] allow" in body["message"]


def test_empty_allow_list_serves_nobody(make_tau: Any) -> None:
    assert_json_error(make_tau(metrics={"allow": ""}).get("/metrics"), 403, "forbidden")
