"""Chat attachments, end-to-end encrypted (the format the browser's chat/attachments.js writes).

Signal's attachment pointers: a fresh AES-256-GCM key per file; the server stores only
``iv (12) || ciphertext || tag (16)``, an opaque blob bound to one conversation; the message itself
(end-to-end encrypted) carries the pointer
``{"type": "tau.attachment", "id", "key", "digest", "name", "size", "content_type"}`` with the key
and the blob's SHA-256 in standard base64. A receiver downloads the blob, checks the digest, then
decrypts (the GCM tag authenticates the bytes again).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

POINTER = "tau.attachment"
IV = 12
_CONTROL = re.compile(r"[\x00-\x1f\x7f/\\]")


class AttachmentError(Exception):
    """A blob that does not match its pointer (changed, truncated or not decryptable)."""


def is_pointer(item: Any) -> bool:
    return isinstance(item, dict) and item.get("type") == POINTER and isinstance(item.get("id"), str)


def safe_name(name: Any) -> str:
    """A file name to save under: no directories, no control characters, never empty."""
    clean = _CONTROL.sub("_", str(name or "")).strip()[:255]
    return clean if clean not in ("", ".", "..") else "attachment"


def seal(data: bytes, name: str, content_type: str = "application/octet-stream") -> tuple[bytes, dict[str, Any]]:
    """The blob to upload and the pointer to send (add the server's ``id`` to it)."""
    key, iv = os.urandom(32), os.urandom(IV)
    blob = iv + AESGCM(key).encrypt(iv, data, None)
    return blob, {"type": POINTER, "key": base64.b64encode(key).decode(),
                  "digest": base64.b64encode(hashlib.sha256(blob).digest()).decode(),
                  "name": safe_name(name), "size": len(data), "content_type": content_type}


def open_attachment(pointer: dict[str, Any], blob: bytes) -> bytes:
    """The file's bytes, after the digest and the AES-GCM tag both check out."""
    try:
        key = base64.b64decode(pointer["key"], validate=True)
        digest = base64.b64decode(pointer["digest"], validate=True)
    except (KeyError, TypeError, ValueError):
        raise AttachmentError("not an attachment pointer")
    if len(key) != 32 or not hmac.compare_digest(hashlib.sha256(blob).digest(), digest):
        raise AttachmentError("the file was changed on the server (digest mismatch)")
    if len(blob) < IV + 16:
        raise AttachmentError("the file is truncated")
    try:
        data = AESGCM(key).decrypt(blob[:IV], blob[IV:], None)
    except InvalidTag:
        raise AttachmentError("the file does not decrypt")
    size = pointer.get("size")
    if isinstance(size, int) and size != len(data):
        raise AttachmentError("the file has the wrong size")
    return data
