"""One device's secrets and sessions: identity, prekeys, Double Ratchet sessions per peer device.

Everything private stays here, on the client (the server only ever sees public keys and
ciphertext). ``DeviceState`` serialises to JSON for ``tau chat`` (written with mode 0600).

Sessions follow Signal's rules: a session we initiated sends PreKey messages (carrying the
X3DH header) until the peer has answered on it; the record per peer device (current session
plus archived states, crossing and simultaneous initiations, identity pinning) is
``tau.client.sessions``. Every failure to decrypt raises :class:`DecryptError` with a reason.
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
from tau.client.sessions import SessionStore, peer_key, safety_number
from tau.client.x3dh import IdentityKey, b64d, b64e, raw_public

__all__ = ["DecryptError", "DeviceState", "peer_key"]

SEEN = 5000  # processed message ids remembered (duplicate deliveries after a lost ack)


class DecryptError(Exception):
    pass


def _priv(key: X25519PrivateKey) -> str:
    return b64e(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))


def _load(text: str) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(b64d(text))


class DeviceState:
    def __init__(self, user: str, device_id: int | None = None, identity: IdentityKey | None = None) -> None:
        self.user = user
        self.device_id = device_id or secrets.randbelow(2**31 - 2) + 1
        self.identity = identity or IdentityKey()
        self.signed_prekeys: dict[int, X25519PrivateKey] = {}
        self.spk_id = 0
        self.one_time: dict[int, X25519PrivateKey] = {}
        self.next_otk = 1
        self.store = SessionStore(peer_key(user, self.device_id))  # sessions per peer device
        #: user → device ids we encrypt for (learned from bundles and 409 answers)
        self.devices: dict[str, list[int]] = {}
        self.registrations: dict[str, int] = {}
        self.registration_id = 0  # this device's, as the server assigned it (0: not known)
        self.seen: list[str] = []
        #: peer devices that wrote on a session we do not have (we were re-installed): start a new one
        self.restart: set[tuple[str, int]] = set()
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
    @property
    def me(self) -> str:
        return peer_key(self.user, self.device_id)

    def has_session(self, user: str, device: int) -> bool:
        return self.store.current(peer_key(user, device)) is not None

    def learn_device(self, user: str, device: int) -> None:
        if (user, device) != (self.user, self.device_id) and device not in self.devices.setdefault(user, []):
            self.devices[user].append(device)

    def start_session(self, user: str, bundle: dict[str, Any]) -> None:
        """X3DH as initiator with a fetched bundle (verifies its signature); older sessions are archived."""
        init = x3dh.initiate(self.identity, bundle)
        if self.registration_id:  # lets the peer send it back, so the server can say "stale" after a re-install
            init.header["rid"] = self.registration_id
        ratchet = Ratchet.alice(init.shared_key, init.their_ratchet_key)
        key = peer_key(user, bundle["device_id"])
        self.store.pin(key, bundle["identity_key"])
        self.store.add_initiated(key, {"ratchet": ratchet, "ad": init.associated_data, "pending": init.header,
                                       "ek": init.header["ek"], "mine": True, "ik": bundle["identity_key"]})
        self.registrations[key] = bundle.get("registration_id", 0)
        self.learn_device(user, bundle["device_id"])

    def forget(self, user: str, device: int) -> None:
        """Stop encrypting for a device (gone from the server); its sessions stay archived."""
        self.registrations.pop(peer_key(user, device), None)
        if device in self.devices.get(user, []):
            self.devices[user].remove(device)

    def envelopes(self, members: list[str], plaintext: bytes) -> list[dict[str, Any]]:
        """One envelope per known device of ``members`` (ours included, this one excluded)."""
        out = []
        for user in members:
            for device in list(self.devices.get(user, [])):
                if (user, device) == (self.user, self.device_id) or not self.has_session(user, device):
                    continue
                env = {"user": user, "device_id": device, "ciphertext": self.encrypt(user, device, plaintext)}
                if self.registrations.get(peer_key(user, device)):
                    env["registration_id"] = self.registrations[peer_key(user, device)]
                out.append(env)
        return out

    def repair(self, answer: dict[str, Any]) -> list[tuple[str, int]]:
        """Apply a ``device_mismatch`` answer; returns the devices whose bundles to fetch. Sessions are
        never dropped (messages in flight still decrypt): gone devices are only no longer encrypted for."""
        for item in answer.get("extra", []):
            self.forget(item["user"], item["device_id"])
        fetch = [(i["user"], i["device_id"]) for i in answer.get("stale", [])]  # re-installed: new identity
        for item in answer.get("missing", []):
            if self.has_session(item["user"], item["device_id"]):
                self.learn_device(item["user"], item["device_id"])  # it wrote to us first
            else:
                fetch.append((item["user"], item["device_id"]))
        for user, device in fetch:
            self.forget(user, device)
        return fetch

    def encrypt(self, user: str, device: int, plaintext: bytes) -> str:
        session = self.store.current(peer_key(user, device))
        if session is None:
            raise KeyError(peer_key(user, device))
        header, ciphertext = session["ratchet"].encrypt(plaintext, session["ad"])
        wire: dict[str, Any] = {"v": 1, "h": header, "c": b64e(ciphertext)}
        if session["pending"] is not None:
            wire["x"] = session["pending"]
        return b64e(json.dumps(wire, separators=(",", ":")).encode())

    def decrypt(self, user: str, device: int, envelope: str) -> bytes:
        try:
            wire = json.loads(b64d(envelope))
            header, ciphertext, prekey = wire["h"], b64d(wire["c"]), wire.get("x")
            if prekey is not None and not isinstance(prekey, dict):
                raise TypeError("x")
        except (ValueError, KeyError, TypeError) as exc:
            raise DecryptError("malformed envelope") from exc
        key = peer_key(user, device)
        if prekey is not None:
            session = self.store.matching_ek(key, prekey.get("ek"))
            if session is None:
                plaintext = self._accept_prekey_message(key, prekey, header, ciphertext)
            else:  # a later message of an initiation we already accepted (current or archived)
                plaintext = self._with(session, header, ciphertext, "prekey message does not decrypt")
            self.learn_device(user, device)
            return plaintext
        for session in list(self.store.records.get(key, [])):
            try:
                plain: bytes = session["ratchet"].decrypt(header, ciphertext, session["ad"])
            except RatchetError:
                continue
            session["pending"] = None  # the peer has this session: plain messages on it from now on
            self.store.promote(key, session)
            self.learn_device(user, device)
            return plain
        if not self.store.records.get(key):
            self.restart.add((user, device))  # answer with a new session so the peer's next message decrypts
            raise DecryptError("no session with this device (its first message was lost or it was re-installed)")
        raise DecryptError("no session state decrypts this message (replay, or a session older than the archive)")

    @staticmethod
    def _with(session: dict[str, Any], header: dict[str, Any], ciphertext: bytes, reason: str) -> bytes:
        try:
            plaintext: bytes = session["ratchet"].decrypt(header, ciphertext, session["ad"])
            return plaintext
        except RatchetError as exc:
            raise DecryptError(reason) from exc

    def _accept_prekey_message(self, key: str, header: dict[str, Any], rheader: dict[str, Any], ct: bytes) -> bytes:
        spk = self.signed_prekeys.get(header.get("spk"))  # type: ignore[arg-type]
        opk_id = header.get("opk")
        opk = self.one_time.get(opk_id) if opk_id is not None else None
        if spk is None or (opk_id is not None and opk is None):
            raise DecryptError("initial message names a prekey this device does not have")
        try:
            sk, ad = x3dh.respond(self.identity, header, spk, opk)
            ratchet = Ratchet.bob(sk, spk)
            plaintext = ratchet.decrypt(rheader, ct, ad)
        except (x3dh.X3DHError, RatchetError, KeyError, ValueError, TypeError) as exc:
            raise DecryptError("initial message does not decrypt") from exc
        if opk_id is not None:  # consumed only now, after a successful decrypt (X3DH section 3.4)
            del self.one_time[opk_id]
        current = self.store.pin(key, header["ik"])
        if current and isinstance(header.get("rid"), int) and header["rid"] > 0:
            self.registrations[key] = header["rid"]
        self.store.add_received(key, {"ratchet": ratchet, "ad": ad, "pending": None, "ek": header["ek"],
                                      "mine": False, "ik": header["ik"]}, current)
        return plaintext

    def sessions_to_restart(self) -> list[tuple[str, int]]:
        """Peer devices to fetch a bundle for and start a session with (their messages did not decrypt)."""
        out, self.restart = sorted(self.restart), set()
        return [(u, d) for u, d in out if not self.has_session(u, d)]

    def identity_changes(self) -> list[dict[str, Any]]:
        """Safety-number changes seen since the last call (peer devices whose identity key changed)."""
        return self.store.pop_changes()

    def safety_number(self, user: str, device: int) -> str | None:
        identity = self.store.identities.get(peer_key(user, device))
        return None if identity is None else safety_number(self.identity.public, identity)

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
                "sessions": self.store.to_dict(),
                "devices": self.devices, "registrations": self.registrations,
                "registration_id": self.registration_id, "seen": self.seen, "extra": self.extra}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DeviceState":
        state = cls(d["user"], d["device_id"], IdentityKey(b64d(d["identity"])))
        state.signed_prekeys = {int(k): _load(v) for k, v in d["signed_prekeys"].items()}
        state.spk_id, state.next_otk = d["spk_id"], d["next_otk"]
        state.one_time = {int(k): _load(v) for k, v in d["one_time"].items()}
        state.store.load(d["sessions"])
        state.registration_id = d.get("registration_id", 0)
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
