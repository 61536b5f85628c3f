"""SMTP AUTH (RFC 4954) with the PLAIN (RFC 4616) and LOGIN SASL mechanisms.

Twisted's ESMTP AUTH lets a malformed PLAIN response escape as an exception and cannot pass
the client's IP to the checker, which the login throttle needs; so the exchange is parsed here
and the credentials go to ``registry.authenticator`` (the one login path every protocol uses,
with its throttle and credential cache).
"""

from __future__ import annotations

import base64
import binascii

from tau.mail.smtp.syntax import Reply

MECHANISMS = (b"PLAIN", b"LOGIN")


class SaslExchange:
    """Challenge/response state for one AUTH command; ``done`` once credentials are complete."""

    username = ""
    password = ""
    done = False

    def challenge(self) -> bytes:
        """The next 334 challenge (unencoded)."""
        raise NotImplementedError

    def respond(self, data: bytes) -> None:
        """Consume one decoded client response; raise Reply when it is malformed."""
        raise NotImplementedError


class Plain(SaslExchange):
    """``[authzid] NUL authcid NUL passwd`` (RFC 4616 §2); acting as another user is refused."""

    def challenge(self) -> bytes:
        return b""

    def respond(self, data: bytes) -> None:
        parts = data.split(b"\0")
        if len(parts) != 3:
            raise Reply(501, "5.5.2 Malformed PLAIN response")
        authzid, authcid, password = (p.decode("utf-8", "replace") for p in parts)
        if authzid and authzid.lower() != authcid.lower():
            raise Reply(535, "5.7.8 Authentication credentials invalid")
        self.username, self.password, self.done = authcid, password, True


class Login(SaslExchange):
    """The de-facto LOGIN mechanism (draft-murchison-sasl-login): username, then password."""

    def __init__(self) -> None:
        self._step = 0

    def challenge(self) -> bytes:
        return b"Username:" if self._step == 0 else b"Password:"

    def respond(self, data: bytes) -> None:
        text = data.decode("utf-8", "replace")
        if self._step == 0:
            self.username = text
            self._step = 1
        else:
            self.password = text
            self.done = True


def start(mechanism: bytes) -> SaslExchange:
    if mechanism.upper() == b"PLAIN":
        return Plain()
    if mechanism.upper() == b"LOGIN":
        return Login()
    raise Reply(504, "5.5.4 Unrecognized authentication type")


def decode(line: bytes) -> bytes:
    """A base64 response line; ``*`` cancels (RFC 4954 §4), ``=`` is an empty initial response."""
    line = line.strip()
    if line == b"*":
        raise Reply(501, "5.0.0 Authentication aborted")
    if line == b"=":
        return b""
    try:
        return base64.b64decode(line, validate=True)
    except (binascii.Error, ValueError):
        raise Reply(501, "5.5.2 Cannot decode response") from None


def encode(challenge: bytes) -> bytes:
    return base64.b64encode(challenge)
