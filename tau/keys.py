"""The installation secret and the keys derived from it.

``tau init`` writes 32 random bytes (mode 0600). Every key tau needs is derived from it with
HKDF under its own label, so one file backs up and rotates everything: JWT signing (ES256),
blob encryption, content addressing, and HMACs for app passwords, refresh tokens and caches.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stat
from functools import cached_property
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SECRET_BYTES = 32


class SecretError(Exception):
    pass


def generate_secret(path: Path) -> None:
    """Write a new secret; never overwrites an existing one."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(base64.b64encode(os.urandom(SECRET_BYTES)) + b"\n")
        fh.flush()
        os.fsync(fh.fileno())


def open_private(path: str | os.PathLike[str]) -> int:
    """A new or truncated file for secret or personal data, mode 0600 whatever the umask (an
    existing file is narrowed too); returns the descriptor (wrap it with ``os.fdopen``)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def private_dir(path: str | os.PathLike[str]) -> None:
    """``path`` and any missing parents as folders only the owner can enter (0700, whatever the
    umask); an existing folder keeps its mode."""
    folder = Path(path)
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for made in missing:
        os.chmod(made, 0o700)


def tighten_umask() -> None:
    """No group write and nothing for others on whatever this process creates (the ``tau``
    command: archives, restored files, keys); explicit modes stay the stricter ones."""
    os.umask(os.umask(0o077) | 0o027)


def load_secret(path: Path) -> bytes:
    try:
        st = path.stat()
        data = path.read_bytes()
    except OSError as exc:
        raise SecretError(f"cannot read secret {path}: {exc.strerror}") from exc
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretError(f"secret {path} is readable by others; chmod 600 it")
    try:
        raw = base64.b64decode(data.strip(), validate=True)
    except ValueError as exc:
        raise SecretError(f"secret {path} is not base64") from exc
    if len(raw) != SECRET_BYTES:
        raise SecretError(f"secret {path} must hold {SECRET_BYTES} bytes")
    return raw


class Keys:
    """Keys derived from the installation secret, each under its own label."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def derive(self, label: str, length: int = 32) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=length, salt=b"tau-v1",
                    info=label.encode()).derive(self._secret)

    def derive_salted(self, label: str, salt: bytes, length: int = 32) -> bytes:
        """A key that also depends on a random ``salt`` kept elsewhere (the at-rest master key of
        one epoch: a new salt is a new master key, from the same secret file)."""
        return HKDF(algorithm=hashes.SHA256(), length=length, salt=b"tau-v1:" + salt,
                    info=label.encode()).derive(self._secret)

    def mac(self, label: str, value: str | bytes) -> str:
        """Keyed hash for things we must look up but never store in the clear."""
        data = value.encode() if isinstance(value, str) else value
        return hmac.new(self.derive("mac:" + label), data, hashlib.sha256).hexdigest()

    @cached_property
    def jwt_private_key(self) -> ec.EllipticCurvePrivateKey:
        seed = int.from_bytes(self.derive("jwt-es256", 48), "big")
        order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
        return ec.derive_private_key(seed % (order - 1) + 1, ec.SECP256R1())

    @cached_property
    def jwt_kid(self) -> str:
        nums = self.jwt_private_key.public_key().public_numbers()
        return hashlib.sha256(nums.x.to_bytes(32, "big") + nums.y.to_bytes(32, "big")).hexdigest()[:16]

    def jwk(self) -> dict[str, str]:
        nums = self.jwt_private_key.public_key().public_numbers()

        def b64(n: int) -> str:
            return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()

        return {"kty": "EC", "crv": "P-256", "x": b64(nums.x), "y": b64(nums.y),
                "use": "sig", "alg": "ES256", "kid": self.jwt_kid}

    @cached_property
    def blob_master_key(self) -> bytes:
        return self.derive("blobs:aes-256-gcm")

    @cached_property
    def blob_address_key(self) -> bytes:
        return self.derive("blobs:address")
