"""Time-limited TURN credentials in coturn's REST-API scheme (``use-auth-secret``).

draft-uberti-behave-turn-rest-00, as coturn implements it: the username is
``<expiry unix time>:<user>``, the password is ``base64(HMAC-SHA1(static-auth-secret, username))``.
tau and coturn share only ``[turn] shared_secret``; coturn checks the HMAC and refuses the
username once its expiry has passed, so no per-user TURN accounts exist anywhere.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any


def credentials(secret: str, user: str, now: float, ttl: int) -> tuple[str, str]:
    """(username, credential) valid until ``now + ttl``."""
    username = f"{int(now) + int(ttl)}:{user}"
    digest = hmac.new(secret.encode("utf-8"), username.encode("utf-8"), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


class TurnConfig:
    """``[turn] uris, shared_secret, ttl`` and what a client is handed for them."""

    def __init__(self, uris: list[str], shared_secret: str, ttl: int) -> None:
        self.uris, self.shared_secret, self.ttl = list(uris), shared_secret, int(ttl)

    @classmethod
    def from_config(cls, config: Any) -> "TurnConfig":
        turn = config.turn
        return cls(list(turn.uris), turn.shared_secret, turn.ttl)

    def for_user(self, user: str, now: float) -> dict[str, Any]:
        """The ``turn`` object of INTERFACE.md (``POST /api/calls``). Without a shared secret the
        URIs (STUN only, presumably) are still given, with null credentials."""
        if not self.shared_secret:
            return {"uris": self.uris, "username": None, "credential": None, "ttl": self.ttl}
        username, credential = credentials(self.shared_secret, user, now, self.ttl)
        return {"uris": self.uris, "username": username, "credential": credential, "ttl": self.ttl}

    @staticmethod
    def ice_servers(turn: dict[str, Any]) -> list[dict[str, Any]]:
        """The same as WebRTC ``RTCIceServer`` dictionaries, ready for ``new RTCPeerConnection``."""
        if not turn["uris"]:
            return []
        server: dict[str, Any] = {"urls": turn["uris"]}
        if turn["username"]:
            server["username"], server["credential"] = turn["username"], turn["credential"]
        return [server]
