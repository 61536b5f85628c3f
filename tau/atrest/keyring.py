"""The key hierarchy of encryption at rest, and the sealing format of one field.

secret ──HKDF(epoch salt)──▶ master key of an epoch ──wraps──▶ each user's keys:
  * data keys (AES-256-GCM), one version per rotation: ``seal``/``open`` a field with the row's
    identity as associated data, so a ciphertext moved to another row, column or user fails;
  * one index key (HMAC-SHA256): ``lookup`` (a path or a unique name, next to its sealed form)
    and ``token`` (search index entries) without plaintext in the database.
A stolen disk or backup without the secret file reads none of it; dropping a user's key rows
(``users`` ON DELETE CASCADE) shreds what is left of them anywhere, backups included.

Sealed value: ``0x01 | data-key version (u32 BE) | nonce (12) | ciphertext+tag``.

Unwrapped keys are cached per user for ``ttl`` seconds (so a rotation's new data key reaches
every node within that time), at most ``max_users`` of them. The keyring is used from database
threads (inside transactions) as well as the reactor, hence the lock.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tau.atrest import store
from tau.keys import Keys
from tau.storage.database import Txn

FORMAT = 0x01
PLAIN_FORMAT = 0x00  # benchmark switch only (TAU_BENCH_ATREST_OFF): a marked plaintext
HEADER = struct.Struct(">BI")
NONCE = 12
OVERHEAD = HEADER.size + NONCE + 16
MASTER_LABEL = "atrest:master"
SYSTEM_LABEL = "atrest:system"
SYSTEM_VERSION = 1
DATA, INDEX = "data", "index"


class SealError(Exception):
    """A sealed value that does not open: another row's, tampered, or its key was shredded."""


def normalise(text: str) -> str:
    """The form lookups and tokens are computed on: NFKC, case-folded."""
    return unicodedata.normalize("NFKC", text).casefold()


@dataclass(frozen=True)
class UserKey:
    """One user's unwrapped keys; ``version`` is the active data key's."""

    user_id: int
    version: int
    data_keys: dict[int, bytes]
    index_key: bytes
    plaintext: bool = False
    # AESGCM objects per data-key version, made once: a listing opens a thousand names, and building
    # the cipher is a third of each open's cost
    _ciphers: dict[int, AESGCM] = field(default_factory=dict, compare=False, repr=False)

    def _cipher(self, version: int) -> AESGCM:
        cipher = self._ciphers.get(version)
        if cipher is None:
            cipher = self._ciphers[version] = AESGCM(self.data_keys[version])
        return cipher

    def _aad(self, context: str) -> bytes:
        return f"tau-atrest|{self.user_id}|{context}".encode()

    def seal(self, context: str, data: bytes | str) -> bytes:
        """``data`` sealed for the row and column named by ``context`` (e.g. ``messages.subject|42``)."""
        raw = data.encode() if isinstance(data, str) else bytes(data)
        if self.plaintext:
            return HEADER.pack(PLAIN_FORMAT, 0) + raw
        nonce = os.urandom(NONCE)
        sealed = self._cipher(self.version).encrypt(nonce, raw, self._aad(context))
        return HEADER.pack(FORMAT, self.version) + nonce + sealed

    def open(self, context: str, sealed: bytes | memoryview) -> bytes:
        value = bytes(sealed)
        if len(value) < HEADER.size:
            raise SealError("not a sealed value")
        fmt, version = HEADER.unpack_from(value)
        if fmt == PLAIN_FORMAT:
            return value[HEADER.size:]
        if fmt != FORMAT or version not in self.data_keys or len(value) < OVERHEAD:
            raise SealError(f"no data key version {version} for user {self.user_id}")
        try:
            return self._cipher(version).decrypt(value[HEADER.size:HEADER.size + NONCE], value[HEADER.size + NONCE:],
                                       self._aad(context))
        except InvalidTag:
            raise SealError(f"sealed value does not belong to {context} of user {self.user_id}") from None

    def open_text(self, context: str, sealed: bytes | memoryview) -> str:
        return self.open(context, sealed).decode()

    def lookup(self, purpose: str, value: str | bytes) -> str:
        """Keyed hash (hex) of ``value`` for equality lookups and uniqueness; callers normalise
        ``value`` as their lookup needs (paths stay case-sensitive, addresses fold)."""
        raw = value.encode() if isinstance(value, str) else value
        return hmac.new(self.index_key, purpose.encode() + b"\0" + raw, hashlib.sha256).hexdigest()

    def token(self, purpose: str, term: str) -> int:
        """A search-index entry for an already normalised ``term``: a signed 64-bit keyed hash
        (collisions only add candidates, which the caller verifies by decrypting)."""
        digest = hmac.new(self.index_key, purpose.encode() + b"\0" + term.encode(), hashlib.sha256).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

    def tokens(self, purpose: str, terms: Iterable[str]) -> list[int]:
        """``token(purpose, t)`` of every term, with the keyed state set up once (a message's
        index has thousands of terms; the same values as ``token``)."""
        base = hmac.new(self.index_key, purpose.encode() + b"\0", hashlib.sha256)
        out = []
        for term in terms:
            h = base.copy()
            h.update(term.encode())
            out.append(int.from_bytes(h.digest()[:8], "big", signed=True))
        return out


def version_of(sealed: bytes | memoryview) -> int:
    """The data-key version a sealed value was made with (0: a benchmark's marked plaintext)."""
    fmt, version = HEADER.unpack_from(bytes(sealed[:HEADER.size]))
    return int(version) if fmt == FORMAT else 0


def is_sealed(value: object) -> bool:
    return isinstance(value, (bytes, memoryview)) and len(value) >= HEADER.size and bytes(value[:1]) in (
        bytes([FORMAT]), bytes([PLAIN_FORMAT]))


class Keyring:
    """Users' keys, unwrapped on demand inside the caller's transaction and cached."""

    def __init__(self, keys: Keys, ttl: float = 60.0, max_users: int = 10_000,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._keys = keys
        self.ttl, self.max_users, self._monotonic = ttl, max_users, monotonic
        self._users: OrderedDict[int, tuple[UserKey, float]] = OrderedDict()
        self._masters: dict[int, AESGCM] = {}
        self._lock = threading.Lock()
        self.plaintext = os.environ.get("TAU_BENCH_ATREST_OFF") == "1"
        self._system: UserKey | None = None

    # -- the system key --------------------------------------------------------------------

    def system(self) -> UserKey:
        """The key of what no user owns (the outbound queue's texts of mail the server itself
        sends: bounces, DSNs): derived from the secret (user id 0 in its associated data, which
        no user has). Not rotated by ``tau keys rotate`` (no rows need re-wrapping); such queue
        rows are short-lived."""
        with self._lock:
            found = self._system
        if found is None:
            found = UserKey(0, SYSTEM_VERSION, {SYSTEM_VERSION: self._keys.derive(SYSTEM_LABEL + ":data")},
                            self._keys.derive(SYSTEM_LABEL + ":index"), self.plaintext)
            with self._lock:
                self._system = found
        return found

    # -- users' keys -----------------------------------------------------------------------

    def for_user_txn(self, txn: Txn, user_id: int) -> UserKey:
        """The user's keys, made (and wrapped under the current epoch) on first use."""
        with self._lock:
            hit = self._users.get(user_id)
            if hit is not None and self._monotonic() - hit[1] < self.ttl:
                self._users.move_to_end(user_id)
                return hit[0]
        rows = store.user_key_rows(txn, user_id)
        if not any(kind == DATA for kind, *_ in rows) or not any(kind == INDEX for kind, *_ in rows):
            self._create(txn, user_id, rows)
            rows = store.user_key_rows(txn, user_id)
        key = self._unwrap_all(txn, user_id, rows)
        with self._lock:
            self._users[user_id] = (key, self._monotonic())
            self._users.move_to_end(user_id)
            while len(self._users) > self.max_users:
                self._users.popitem(last=False)
        return key

    def _create(self, txn: Txn, user_id: int, rows: list[tuple[str, int, int, bytes, int | None]]) -> None:
        epoch, salt = store.ensure_epoch(txn)
        master = self._master(epoch, salt)
        kinds = {kind for kind, *_ in rows}
        for kind in (DATA, INDEX):
            if kind not in kinds:
                version = 1 if kind == DATA else 0
                store.insert_user_key(txn, user_id, kind, version, epoch,
                                      _wrap(master, user_id, kind, version, os.urandom(32)))

    def _unwrap_all(self, txn: Txn, user_id: int, rows: list[tuple[str, int, int, bytes, int | None]]) -> UserKey:
        data: dict[int, bytes] = {}
        index = b""
        for kind, version, epoch, wrapped, _retired in rows:
            raw = _unwrap(self._master(epoch, None, txn), user_id, kind, version, wrapped)
            if kind == DATA:
                data[version] = raw
            else:
                index = raw
        return UserKey(user_id, max(data), data, index, self.plaintext)

    def _master(self, epoch: int, salt: bytes | None, txn: Txn | None = None) -> AESGCM:
        with self._lock:
            cached = self._masters.get(epoch)
        if cached is not None:
            return cached
        if salt is None:
            assert txn is not None
            salt = store.epoch_salt(txn, epoch)
        aead = AESGCM(self._keys.derive_salted(MASTER_LABEL, salt))
        with self._lock:
            self._masters[epoch] = aead
        return aead

    def evict(self, user_id: int | None = None) -> None:
        """Forget cached keys (one user's, or all): after a shred, or when a rotation finished."""
        with self._lock:
            if user_id is None:
                self._users.clear()
            else:
                self._users.pop(user_id, None)

    # -- rotation --------------------------------------------------------------------------

    def rotate_txn(self, txn: Txn, batch: int = 1000) -> tuple[int, int]:
        """A new epoch (a new master key from a new salt); every user key re-wrapped under it and
        every user given a new active data key (the old ones retire: the converter re-seals
        rows under the new one, then drops them). Returns (epoch, users)."""
        epoch, salt = store.new_epoch(txn)
        master = self._master(epoch, salt)
        after: tuple[int, str, int] = (-1, "", -1)
        newest: dict[int, int] = {}
        while True:
            rows = store.all_keys(txn, after, batch)
            if not rows:
                break
            for user_id, kind, version, old_epoch, wrapped in rows:
                raw = _unwrap(self._master(old_epoch, None, txn), user_id, kind, version, wrapped)
                store.rewrap(txn, user_id, kind, version, epoch, _wrap(master, user_id, kind, version, raw))
                if kind == DATA:
                    newest[user_id] = max(version, newest.get(user_id, 0))
            after = rows[-1][:3]
        for user_id, version in newest.items():
            store.insert_user_key(txn, user_id, DATA, version + 1, epoch,
                                  _wrap(master, user_id, DATA, version + 1, os.urandom(32)))
            store.retire_data_keys(txn, user_id, version + 1)
        txn.call_after(self.evict)
        return epoch, len(newest)

    def rewrap_stale_txn(self, txn: Txn, limit: int = 500) -> int:
        """Keys a writer made under an older epoch while a rotation ran: re-wrapped under the newest."""
        latest = store.latest_epoch(txn)
        if latest is None:
            return 0
        epoch, salt = latest
        rows = store.stale_epoch_keys(txn, epoch, limit)
        master = self._master(epoch, salt)
        for user_id, kind, version, old_epoch, wrapped in rows:
            raw = _unwrap(self._master(old_epoch, None, txn), user_id, kind, version, wrapped)
            store.rewrap(txn, user_id, kind, version, epoch, _wrap(master, user_id, kind, version, raw))
        if not rows:
            store.drop_unused_epochs(txn)
        return len(rows)


def _key_aad(user_id: int, kind: str, version: int) -> bytes:
    return f"tau-user-key|{user_id}|{kind}|{version}".encode()


def _wrap(master: AESGCM, user_id: int, kind: str, version: int, raw: bytes) -> bytes:
    nonce = os.urandom(NONCE)
    return nonce + master.encrypt(nonce, raw, _key_aad(user_id, kind, version))


def _unwrap(master: AESGCM, user_id: int, kind: str, version: int, wrapped: bytes) -> bytes:
    try:
        return master.decrypt(wrapped[:NONCE], wrapped[NONCE:], _key_aad(user_id, kind, version))
    except InvalidTag:
        raise SealError(f"the {kind} key {version} of user {user_id} does not unwrap (another secret?)") from None
