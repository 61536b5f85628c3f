"""A small blocking HTTP client for tau's REST API (standard library only).

``Rest.call`` returns the decoded JSON answer or raises :class:`ApiError` carrying the
contract's error body (``error``, ``message``, and extras such as ``missing``/``extra``).
An expired access token is refreshed once with the refresh token, if there is one.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlencode


class ApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
        self.error = body.get("error", "error")
        super().__init__(f"{status} {self.error}: {body.get('message', '')}")


class Rest:
    def __init__(self, base_url: str, token: str | None = None, refresh_token: str | None = None,
                 verify_tls: bool = True, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.refresh_token = refresh_token
        self.timeout = timeout
        self._ssl = None if verify_tls else ssl._create_unverified_context()

    def login(self, username: str, password: str) -> dict[str, Any]:
        """OAuth2 password grant (RFC 6749 section 4.3); keeps the tokens."""
        answer = self._form({"grant_type": "password", "username": username, "password": password})
        self.token, self.refresh_token = answer["access_token"], answer.get("refresh_token")
        return answer

    def refresh(self) -> None:
        answer = self._form({"grant_type": "refresh_token", "refresh_token": self.refresh_token or ""})
        self.token, self.refresh_token = answer["access_token"], answer.get("refresh_token", self.refresh_token)

    def _form(self, fields: dict[str, str]) -> dict[str, Any]:
        status, body = self._send("POST", "/oauth2/token", urlencode(fields).encode(),
                                  {"Content-Type": "application/x-www-form-urlencoded"})
        if status != 200:
            raise ApiError(status, body)
        return body

    def call(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None) -> Any:
        if query:
            path += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        data = None if body is None else json.dumps(body).encode()
        for attempt in (1, 2):
            headers = {"Content-Type": "application/json"} if data is not None else {}
            if self.token:
                headers["Authorization"] = f"Bearer {self.token}"
            status, answer = self._send(method, path, data, headers)
            if status == 401 and attempt == 1 and self.refresh_token:
                self.refresh()
                continue
            if status >= 400:
                raise ApiError(status, answer if isinstance(answer, dict) else {})
            return answer
        raise AssertionError("unreachable")

    def _send(self, method: str, path: str, data: bytes | None, headers: dict[str, str]) -> tuple[int, Any]:
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=self._ssl) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        try:
            return status, json.loads(raw) if raw else {}
        except ValueError:
            return status, {"error": "invalid_response", "message": raw[:200].decode("latin-1")}

    def raw(self, method: str, path: str, data: bytes | None = None) -> bytes:
        """A call whose answer (and body) are bytes: chat attachments, opaque ciphertext."""
        for attempt in (1, 2):
            headers = {"Content-Type": "application/octet-stream"} if data is not None else {}
            req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
            if self.token:
                req.add_header("Authorization", f"Bearer {self.token}")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout, context=self._ssl) as resp:
                    return bytes(resp.read())
            except urllib.error.HTTPError as err:
                body = err.read()
                if err.code == 401 and attempt == 1 and self.refresh_token:
                    self.refresh()
                    continue
                try:
                    answer = json.loads(body)
                except ValueError:
                    answer = {}
                raise ApiError(err.code, answer if isinstance(answer, dict) else {})
        raise AssertionError("unreachable")

    # -- the messenger's endpoints ----------------------------------------------------------------
    def put_keys(self, upload: dict[str, Any]) -> dict[str, Any]:
        return self.call("PUT", "/api/keys", upload)

    def key_counts(self) -> list[dict[str, int]]:
        return self.call("GET", "/api/keys")["devices"]

    def bundles(self, user: str, device_id: int | None = None) -> list[dict[str, Any]]:
        return self.call("GET", "/api/keys/" + quote(user), query={"device_id": device_id})["devices"]

    def post_message(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.call("POST", "/api/messages", body)

    def messages(self, **query: Any) -> dict[str, Any]:
        return self.call("GET", "/api/messages", query=query)

    def conversation(self, conv_id: str) -> dict[str, Any]:
        return self.call("GET", f"/api/conversations/{quote(str(conv_id))}")

    def create_conversation(self, members: list[str], title: str = "", encrypted: bool = True,
                            kind: str = "group") -> dict[str, Any]:
        return self.call("POST", "/api/conversations",
                         {"kind": kind, "members": members, "title": title, "encrypted": encrypted})

    def presence(self, users: list[str]) -> list[dict[str, Any]]:
        return self.call("GET", "/api/presence", query={"users": ",".join(users)})["items"]

    def set_presence(self, status: str) -> None:
        self.call("PUT", "/api/presence", {"status": status})
