"""Session records per peer device: the current session plus archived states, as Signal keeps them.

A *record* is the list of sessions with one peer device, current first, at most
``1 + ARCHIVED`` long. Rules (Signal's SessionRecord/SessionCipher, and what makes crossing
messages safe):

- A PreKey message whose ephemeral key matches a session in the record (current or archived)
  is decrypted with that session: a second message of the same initiation never needs the
  one-time prekey again, which was consumed by the first.
- A PreKey message that starts a new session becomes current, except in a simultaneous
  initiation: when our current session is one *we* started and the peer has not answered on
  it yet, both sides keep the session started by the device whose ``user|device`` key sorts
  first, so the two converge on one session (the other stays archived, still decrypting).
- A normal message decrypts with whichever state matches and promotes it to current (unless
  that state belongs to the peer's identity before a re-install).
- Each peer device's identity key is pinned on first use; a different key later (a re-install)
  is recorded as a safety-number change for the application to show, never adopted silently.
"""

from __future__ import annotations

import hashlib
from typing import Any

from tau.client.ratchet import Ratchet
from tau.client.x3dh import b64d, b64e

ARCHIVED = 40  # previous session states kept per peer device (Signal: 40)

Session = dict[str, Any]  # {"ratchet", "ad", "pending", "ek", "mine", "ik"}


def peer_key(user: str, device: int) -> str:
    return f"{user}|{device}"


def fingerprint(identity_b64: str) -> str:
    """A short, readable digest of an identity key (groups of five digits, like safety numbers)."""
    digest = hashlib.sha512(b64d(identity_b64)).digest()
    return " ".join(f"{int.from_bytes(digest[i:i + 5], 'big') % 100000:05d}" for i in range(0, 30, 5))


def safety_number(my_identity: bytes, their_identity_b64: str) -> str:
    """Both fingerprints, the smaller first: the same number on both devices."""
    return " ".join(sorted([fingerprint(b64e(my_identity)), fingerprint(their_identity_b64)]))


class SessionStore:
    def __init__(self, me: str) -> None:
        self.me = me  # our own "user|device"
        self.records: dict[str, list[Session]] = {}
        self.identities: dict[str, str] = {}  # peer key → pinned identity key (base64)
        self.changes: list[dict[str, Any]] = []  # safety-number changes not yet shown
        self.retired: dict[str, list[str]] = {}  # peer key → identities it had before

    def current(self, key: str) -> Session | None:
        record = self.records.get(key)
        return record[0] if record else None

    def matching_ek(self, key: str, ek: Any) -> Session | None:
        return next((s for s in self.records.get(key, []) if s["ek"] == ek), None)

    def pin(self, key: str, identity: str) -> bool:
        """Trust on first use; a changed identity is recorded (and the new one pinned). False for an
        identity this device had before (a late message from before a re-install): not pinned again."""
        old = self.identities.get(key)
        if identity in self.retired.get(key, []):
            return False
        if old is not None and old != identity:
            user, _, device = key.rpartition("|")
            self.changes.append({"user": user, "device_id": int(device), "old": fingerprint(old),
                                 "new": fingerprint(identity)})
            self.retired.setdefault(key, []).append(old)
            del self.retired[key][:-ARCHIVED]
        self.identities[key] = identity
        return True

    def add_initiated(self, key: str, session: Session) -> None:
        self._insert(key, session, 0)

    def add_received(self, key: str, session: Session, current_identity: bool = True) -> None:
        """A session started by the peer's PreKey message: current unless our own start wins the tie
        (or it belongs to a retired identity: then it is only archived, to decrypt what is in flight)."""
        cur = self.current(key)
        simultaneous = (cur is not None and cur["mine"] and cur["pending"] is not None
                        and cur.get("ik") == session.get("ik"))
        self._insert(key, session, 1 if cur is not None and (not current_identity or (simultaneous
                                                                                     and self.me < key)) else 0)

    def promote(self, key: str, session: Session) -> None:
        """Make a state that just decrypted a normal message current, unless it belongs to an identity
        the device no longer has (a message sent before a re-install, arriving late)."""
        if session.get("ik") not in (None, self.identities.get(key)):
            return
        record = self.records[key]
        record.insert(0, record.pop(next(i for i, s in enumerate(record) if s is session)))

    def _insert(self, key: str, session: Session, index: int) -> None:
        record = self.records.setdefault(key, [])
        record.insert(index, session)
        del record[1 + ARCHIVED:]

    def pop_changes(self) -> list[dict[str, Any]]:
        changes, self.changes = self.changes, []
        return changes

    # -- persistence ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"records": {k: [_dump(s) for s in v] for k, v in self.records.items()},
                "identities": self.identities, "changes": self.changes, "retired": self.retired}

    def load(self, d: dict[str, Any]) -> None:
        records = d.get("records", d)  # state files before archived records: just the lists
        self.records = {k: [_undump(s) for s in v] for k, v in records.items()}
        self.identities = dict(d.get("identities", {}))
        self.changes = list(d.get("changes", []))
        self.retired = {k: list(v) for k, v in d.get("retired", {}).items()}


def _dump(s: Session) -> dict[str, Any]:
    return {"ratchet": s["ratchet"].to_dict(), "ad": b64e(s["ad"]), "pending": s["pending"], "ek": s["ek"],
            "mine": s["mine"], "ik": s.get("ik")}


def _undump(s: dict[str, Any]) -> Session:
    return {"ratchet": Ratchet.from_dict(s["ratchet"]), "ad": b64d(s["ad"]), "pending": s["pending"], "ek": s["ek"],
            "mine": bool(s.get("mine")), "ik": s.get("ik")}
