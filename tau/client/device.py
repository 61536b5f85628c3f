"""One device's secrets and sessions: identity, prekeys, Double Ratchet sessions per peer device.

Everything private stays here, on the client (the server only ever sees public keys and
ciphertext). ``DeviceState`` serialises to JSON for ``tau chat`` (written with mode 0600).

Sessions follow Signal's rules: a session we initiated sends PreKey messages (carrying the
X3DH header) until the peer has answered on it; a new PreKey message from a peer starts a
new session that becomes the active one, and a few older sessions are kept to decrypt
messages still in flight (Signal's "archived session states").
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from tau.client import x3dh
from tau.client.ratchet import Ratchet, RatchetError
from tau.client.x3dh import IdentityKey, b64d, b64e, raw_public

ARCHIVED = 3  # old sessions kept per peer device
SEEN = 5000  # processed message ids remembered (duplicate deliveries after a lost ack)


class DecryptError(Exception):
    pass


def _priv(key: X25519PrivateKey) -> str:
    return b64e(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))


def _load(text: str) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(b64d(text))


def peer_key(user: str, device: int) -> str:
    return f"{user}|{device}"


class DeviceState:
    def __init__(self, user: str, device_id: int | None = None, identity: IdentityKey | None = None) -> None:
        self.user = user
        self.device_id = device_id or secrets.randbelow(2**31 - 2) + 1
        self.identity = identity or IdentityKey()
        self.signed_prekeys: dict[int, X25519PrivateKey] = {}
        self.spk_id = 0
        self.one_time: dict[int, X25519PrivateKey] = {}
        self.next_otk = 1
        #: peer "user|device" → sessions, active first: {"ratchet", "ad", "pending", "ek"}
        self.sessions: dict[str, list[dict[str, Any]]] = {}
        #: user → device ids we encrypt for (learned from bundles and 409 answers)
        self.devices: dict[str, list[int]] = {}
        self.registrations: dict[str, int] = {}
        self.seen: list[str] = []
        self.extra: dict[str, Any] = {}  # server URL, tokens... (used by tau chat)

    # -- keys to publish ------------------------------------------------------------------------
    def rotate_signed_prekey(self) -> None:
        self.spk_id += 1
        self.signed_prekeys[self.spk_id] = X25519PrivateKey.generate()
        for old in sorted(self.signed_prekeys)[:-2]:  # keep the previous one for messages in flight
            del self.signed_prekeys[old]

    def new_one_time_prekeys(self, count: int) -> list[dict[str, Any]]:
        out = []
        for _ in range(count):
            key_id, self.next_otk = self.next_otk, self.next_otk + 1
            self.one_time[key_id] = X25519PrivateKey.generate()
            out.append({"key_id": key_id, "public_key": b64e(raw_public(self.one_time[key_id].public_key()))})
        return out

    def upload(self, one_time: int = 50) -> dict[str, Any]:
        """A ``PUT /api/keys`` body (creates a signed prekey the first time)."""
        if not self.signed_prekeys:
            self.rotate_signed_prekey()
        spk = raw_public(self.signed_prekeys[self.spk_id].public_key())
        return {"device_id": self.device_id, "identity_key": b64e(self.identity.public),
                "signed_prekey": {"key_id": self.spk_id, "public_key": b64e(spk),
                                  "signature": b64e(self.identity.sign(spk))},
                "one_time_prekeys": self.new_one_time_prekeys(one_time)}

    # -- sessions -------------------------------------------------------------------------------
    def has_session(self, user: str, device: int) -> bool:
        return bool(self.sessions.get(peer_key(user, device)))

    def start_session(self, user: str, bundle: dict[str, Any]) -> None:
        """X3DH as initiator with a fetched bundle (verifies its signature)."""
        init = x3dh.initiate(self.identity, bundle)
        ratchet = Ratchet.alice(init.shared_key, init.their_ratchet_key)
        key = peer_key(user, bundle["device_id"])
        session = {"ratchet": ratchet, "ad": init.associated_data, "pending": init.header, "ek": init.header["ek"]}
        self.sessions[key] = [session] + self.sessions.get(key, [])[:ARCHIVED]
        self.registrations[key] = bundle.get("registration_id", 0)
        if bundle["device_id"] not in self.devices.setdefault(user, []):
            self.devices[user].append(bundle["device_id"])

    def forget(self, user: str, device: int) -> None:
        self.sessions.pop(peer_key(user, device), None)
        self.registrations.pop(peer_key(user, device), None)
        if device in self.devices.get(user, []):
            self.devices[user].remove(device)

    def encrypt(self, user: str, device: int, plaintext: bytes) -> str:
        session = self.sessions[peer_key(user, device)][0]
        header, ciphertext = session["ratchet"].encrypt(plaintext, session["ad"])
        wire: dict[str, Any] = {"v": 1, "h": header, "c": b64e(ciphertext)}
        if session["pending"] is not None:
            wire["x"] = session["pending"]
        return b64e(json.dumps(wire, separators=(",", ":")).encode())

    def decrypt(self, user: str, device: int, envelope: str) -> bytes:
        try:
            wire = json.loads(b64d(envelope))
            header, ciphertext = wire["h"], b64d(wire["c"])
        except (ValueError, KeyError, TypeError) as exc:
            raise DecryptError("malformed envelope") from exc
        key = peer_key(user, device)
        sessions = self.sessions.setdefault(key, [])
        prekey = wire.get("x")
        if prekey is not None and not any(s["ek"] == prekey.get("ek") for s in sessions):
            return self._accept_prekey_message(key, prekey, header, ciphertext)
        for index, session in enumerate(sessions):
            try:
                plaintext = session["ratchet"].decrypt(header, ciphertext, session["ad"])
            except RatchetError:
                continue
            session["pending"] = None  # the peer has our session: plain messages from now on
            sessions.insert(0, sessions.pop(index))
            return plaintext
        raise DecryptError("no session decrypts this message")

    def _accept_prekey_message(self, key: str, header: dict[str, Any], rheader: dict[str, Any], ct: bytes) -> bytes:
        spk = self.signed_prekeys.get(header.get("spk"))
        opk_id = header.get("opk")
        opk = self.one_time.get(opk_id) if opk_id is not None else None
        if spk is None or (opk_id is not None and opk is None):
            raise DecryptError("initial message names a prekey this device does not have")
        try:
            sk, ad = x3dh.respond(self.identity, header, spk, opk)
            ratchet = Ratchet.bob(sk, spk)
            plaintext = ratchet.decrypt(rheader, ct, ad)
        except (x3dh.X3DHError, RatchetError, KeyError, ValueError) as exc:
            raise DecryptError("initial message does not decrypt") from exc
        if opk_id is not None:
            del self.one_time[opk_id]  # one-time: never accepted twice (X3DH section 3.4)
        session = {"ratchet": ratchet, "ad": ad, "pending": None, "ek": header["ek"]}
        self.sessions[key] = [session] + self.sessions.get(key, [])[:ARCHIVED]
        return plaintext

    def mark_seen(self, message_id: str) -> bool:
        """False if this message id was processed already."""
        if message_id in self.seen:
            return False
        self.seen.append(message_id)
        del self.seen[:-SEEN]
        return True

    # -- persistence ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"user": self.user, "device_id": self.device_id, "identity": b64e(self.identity.seed),
                "signed_prekeys": {str(k): _priv(v) for k, v in self.signed_prekeys.items()}, "spk_id": self.spk_id,
                "one_time": {str(k): _priv(v) for k, v in self.one_time.items()}, "next_otk": self.next_otk,
                "sessions": {k: [{"ratchet": s["ratchet"].to_dict(), "ad": b64e(s["ad"]), "pending": s["pending"],
                                  "ek": s["ek"]} for s in v] for k, v in self.sessions.items()},
                "devices": self.devices, "registrations": self.registrations, "seen": self.seen, "extra": self.extra}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DeviceState":
        state = cls(d["user"], d["device_id"], IdentityKey(b64d(d["identity"])))
        state.signed_prekeys = {int(k): _load(v) for k, v in d["signed_prekeys"].items()}
        state.spk_id, state.next_otk = d["spk_id"], d["next_otk"]
        state.one_time = {int(k): _load(v) for k, v in d["one_time"].items()}
        state.sessions = {k: [{"ratchet": Ratchet.from_dict(s["ratchet"]), "ad": b64d(s["ad"]),
                               "pending": s["pending"], "ek": s["ek"]} for s in v] for k, v in d["sessions"].items()}
        state.devices = {u: list(v) for u, v in d["devices"].items()}
        state.registrations, state.seen, state.extra = d["registrations"], d["seen"], d.get("extra", {})
        return state

    def save(self, path: str | Path) -> None:
        """Atomically, readable by the owner only: this file holds private keys."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(self.to_dict(), fh)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path) -> "DeviceState":
        return cls.from_dict(json.loads(Path(path).read_text()))
