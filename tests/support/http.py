"""Drive a TauSite in-process: real HTTP bytes in, real HTTP bytes out, no sockets, no reactor."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    raw_headers: list[tuple[str, str]] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def assert_json_error(response: HttpResponse, status: int, error: str | None = None) -> dict[str, Any]:
    """Assert the contract's error (INTERFACE.md, HTTP): a JSON body with error, message, timestamp
    (RFC 3339) and request_id, the same id in ``X-Request-ID``. Returns the body."""
    assert response.status == status, (response.status, response.body[:500])
    assert (response.header("content-type") or "").startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict) and {"error", "message", "timestamp", "request_id"} <= set(body), body
    assert body["request_id"] and body["request_id"] == response.header("x-request-id"), (body, response.headers)
    assert body["timestamp"].endswith("Z") and "T" in body["timestamp"], body
    if error is not None:
        assert body["error"] == error, body
    return body


def parse_response(data: bytes) -> HttpResponse:
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    while lines and lines[0].startswith("HTTP/1.1 100"):
        # skip an interim 100 Continue
        lines = lines[2:] if len(lines) > 1 else []
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    raw: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
        raw.append((name.strip(), value.strip()))
    body = rest
    if headers.get("transfer-encoding") == "chunked":
        out = b""
        while body:
            size_line, _, body = body.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            out += body[:size]
            body = body[size + 2:]
        body = out
    elif "content-length" in headers:
        body = body[: int(headers["content-length"])]
    return HttpResponse(status, headers, body, raw)


class FakeHttpClient:
    def __init__(self, site: Any, ip: str = "127.0.0.1") -> None:
        self.site = site
        self.ip = ip

    def request(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
                token: str | None = None, ip: str | None = None, chunked: bool = False) -> HttpResponse:
        channel = self.site.buildProtocol(IPv4Address("TCP", ip or self.ip, 40000))
        transport = StringTransport(peerAddress=IPv4Address("TCP", ip or self.ip, 40000),
                                    hostAddress=IPv4Address("TCP", "127.0.0.1", 8080))
        channel.makeConnection(transport)
        hdrs = {"Host": "localhost", "Connection": "close"}
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        hdrs.update(headers or {})
        if chunked:
            hdrs["Transfer-Encoding"] = "chunked"
        elif body or method in ("POST", "PUT", "PATCH"):
            hdrs["Content-Length"] = str(len(body))
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
        payload = head.encode("latin-1")
        if chunked:
            for i in range(0, len(body), 8192):
                part = body[i:i + 8192]
                payload += f"{len(part):x}\r\n".encode() + part + b"\r\n"
            payload += b"0\r\n\r\n"
        else:
            payload += body
        channel.dataReceived(payload)
        return parse_response(transport.value())

    def get(self, path: str, **kw: Any) -> HttpResponse:
        return self.request("GET", path, **kw)

    def post_form(self, path: str, form: dict[str, str], **kw: Any) -> HttpResponse:
        headers = {"Content-Type": "application/x-www-form-urlencoded", **kw.pop("headers", {})}
        return self.request("POST", path, urlencode(form).encode(), headers=headers, **kw)

    def post_json(self, path: str, obj: Any, method: str = "POST", **kw: Any) -> HttpResponse:
        headers = {"Content-Type": "application/json", **kw.pop("headers", {})}
        return self.request(method, path, json.dumps(obj).encode(), headers=headers, **kw)
