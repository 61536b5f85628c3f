"""``/api/admin/oauth/clients``: admins register, list and remove OAuth clients; nobody else can."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlencode

from tau.auth import oauth_clients
from tests.support.http import assert_json_error

REDIRECT = "https://app.example.org/cb"
ENDPOINTS = [("GET", "/api/admin/oauth/clients"), ("POST", "/api/admin/oauth/clients"),
             ("DELETE", "/api/admin/oauth/clients/tau-x")]


def test_non_admins_get_403_and_anonymous_401(admin: Any) -> None:
    bob = admin.token("bob@example.test")
    for method, path in ENDPOINTS:
        assert_json_error(admin.json(method, path, {"name": "Evil", "redirect_uris": [REDIRECT]}, token=bob),
                          403, "forbidden")
        assert_json_error(admin.json(method, path, {"name": "Evil", "redirect_uris": [REDIRECT]}), 401)
    assert admin.registry.db.sync.run("t", oauth_clients.list_clients) == []


def test_add_list_remove(admin: Any) -> None:
    t = admin.token()
    r = admin.json("POST", "/api/admin/oauth/clients", {"name": "Notes", "redirect_uris": [REDIRECT]}, t)
    assert r.status == 201, r.body
    body = r.json()
    assert body["redirect_uris"] == [REDIRECT] and not body["confidential"] and "client_secret" not in body
    items = admin.get("/api/admin/oauth/clients", t).json()["items"]
    assert [i["client_id"] for i in items] == [body["client_id"]]
    assert admin.json("DELETE", f"/api/admin/oauth/clients/{body['client_id']}", {}, t).status == 204
    assert admin.get("/api/admin/oauth/clients", t).json()["items"] == []
    assert_json_error(admin.json("DELETE", f"/api/admin/oauth/clients/{body['client_id']}", {}, t), 404,
                      "client_not_found")


def test_a_confidential_client_gets_its_secret_once_and_it_works(admin: Any) -> None:
    t = admin.token()
    r = admin.json("POST", "/api/admin/oauth/clients", {"name": "Server", "redirect_uris": [REDIRECT],
                                                        "confidential": True}, t)
    assert r.status == 201 and r.header("cache-control") == "no-store"
    client_id, secret = r.json()["client_id"], r.json()["client_secret"]
    listing = admin.get("/api/admin/oauth/clients", t)
    assert secret.encode() not in listing.body and listing.json()["items"][0]["confidential"] is True
    grant = {"grant_type": "password", "username": "bob@example.test", "password": "secret-Pa55"}
    assert_json_error(admin.client.post_form("/oauth2/token", {**grant, "client_id": client_id}), 401,
                      "invalid_client")
    creds = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    ok = admin.client.request("POST", "/oauth2/token", body=urlencode(grant).encode(),
                              headers={"Content-Type": "application/x-www-form-urlencoded",
                                       "Authorization": f"Basic {creds}"})
    assert ok.status == 200, ok.body


def test_bad_registrations_are_400(admin: Any) -> None:
    t = admin.token()
    for body in ({"name": "X", "redirect_uris": ["http://evil.example:1234\\@127.0.0.1/cb"]},
                 {"name": "X", "redirect_uris": ["https://app.example.org/cb#frag"]},
                 {"name": "X", "redirect_uris": "https://app.example.org/cb"},
                 {"name": "X", "redirect_uris": []},
                 {"name": "", "redirect_uris": [REDIRECT]},
                 {"name": "X", "redirect_uris": [REDIRECT], "confidential": True, "native": True},
                 {"name": "X", "redirect_uris": [REDIRECT], "confidential": "yes"}):
        response = admin.json("POST", "/api/admin/oauth/clients", body, t)
        assert response.status == 400, (body, response.body)
    assert admin.get("/api/admin/oauth/clients", t).json()["items"] == []
