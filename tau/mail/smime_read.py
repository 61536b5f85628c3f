"""Reading received S/MIME (RFC 8551): is a message signed, by whom, validly; decrypting it.

A signature is ``valid`` when the SignedData verifies over the signed entity's exact bytes
(:mod:`tau.mail.smime_cms`), the signer's certificate names the message's From address and was
valid at ``now``. No chain to a CA is checked (tau has no S/MIME trust store): ``valid`` says the
holder of that certificate's key signed this content. Only the top-level entity is looked at (and,
in an encrypted message, the decrypted entity): that is where S/MIME puts its structures.
Everything here is blocking: run it in a worker thread.
"""

from __future__ import annotations

import base64
import binascii
import email.policy
import email.utils
import re
from email.parser import BytesParser
from typing import Any

from cryptography import x509

from tau.mail import smime, smime_cms

MAX_SMIME_BYTES = 32 * 1024 * 1024
_LINES = re.compile(rb"\r?\n")


def _head(raw: bytes) -> tuple[Any, int]:
    """(the entity's headers, where its body starts)."""
    m = re.search(rb"\r?\n\r?\n", raw)
    end = m.end() if m else len(raw)
    return BytesParser(policy=email.policy.default).parsebytes(raw[:end], headersonly=True), end


def kind(raw: bytes) -> str | None:
    """"signed" (multipart/signed, pkcs7), "enveloped", "opaque" (signed-data) or None."""
    head, _ = _head(raw)
    ctype = head.get_content_type()
    if ctype == "multipart/signed" and (head.get_param("protocol") or "").lower() in smime.SIGNATURE_PROTOCOLS:
        return "signed"
    if ctype in ("application/pkcs7-mime", "application/x-pkcs7-mime"):
        stype = str(head.get_param("smime-type") or "").lower()
        if stype == "signed-data":
            return "opaque"
        name = str(head.get_param("name") or head.get_filename() or "").lower()
        if stype == "enveloped-data" or (not stype and name.endswith(".p7m")):
            return "enveloped"
    return None


def _decoded_body(raw: bytes) -> bytes:
    head, start = _head(raw)
    data = raw[start:]
    if str(head.get("Content-Transfer-Encoding", "")).strip().lower() == "base64":
        try:
            return base64.b64decode(re.sub(rb"\s+", b"", data), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise smime_cms.CmsError("bad base64") from exc
    return data


def detached_parts(raw: bytes) -> tuple[bytes, bytes]:
    """(the signed entity's exact bytes, the SignedData DER) of a ``multipart/signed`` entity."""
    raw = _LINES.sub(b"\r\n", raw)                     # RFC 8551 §3.1.1: CRLF canonical form
    head, start = _head(raw)
    boundary = head.get_boundary()
    if not boundary:
        raise smime_cms.CmsError("multipart/signed without a boundary")
    delim = b"--" + boundary.encode("ascii", "replace")
    body = b"\r\n" + raw[start:]
    first = body.find(b"\r\n" + delim)
    if first < 0:
        raise smime_cms.CmsError("no parts")
    content_start = body.find(b"\r\n", first + 2 + len(delim)) + 2
    content_end = body.find(b"\r\n" + delim, content_start)
    if content_start < 2 or content_end < 0:
        raise smime_cms.CmsError("no signature part")
    sig_start = body.find(b"\r\n", content_end + 2 + len(delim)) + 2
    sig_end = body.find(b"\r\n" + delim, sig_start)
    if sig_start < 2 or sig_end < 0:
        raise smime_cms.CmsError("unterminated signature part")
    return body[content_start:content_end], _decoded_body(body[sig_start:sig_end] + b"\r\n")


def _from_address(raw: bytes) -> str | None:
    head, _ = _head(raw)
    found = email.utils.getaddresses([str(v) for v in head.get_all("From", [])])
    return found[0][1].lower() if len(found) == 1 and found[0][1] else None


def check_signature(entity: bytes, sender: str | None, now: float) -> tuple[dict[str, Any], x509.Certificate | None]:
    """(the REST view's signature fields, the signer's certificate when the signature verifies)."""
    try:
        if kind(entity) == "signed":
            content, der = detached_parts(entity)
            cert, _ = smime_cms.verify(der, content)
        else:
            cert, _ = smime_cms.verify(_decoded_body(entity), None)
        names = smime.addresses(cert)
    except Exception as exc:       # noqa: BLE001 - hostile bytes: whatever the parsers raise is "not valid"
        return {"signed": True, "valid": False, "signer": None, "reason": str(exc) or "bad signature"}, None
    out: dict[str, Any] = {"signed": True, "valid": True, "signer": sender if sender in names else
                           (names[0] if names else None), "fingerprint": smime.fingerprint(cert)}
    if sender not in names:
        out.update(valid=False, reason="the certificate does not name the From address")
    elif not cert.not_valid_before_utc.timestamp() <= now <= cert.not_valid_after_utc.timestamp():
        out.update(valid=False, reason="the certificate is expired or not yet valid")
    return out, cert


def opaque_content(entity: bytes) -> bytes | None:
    try:
        return smime_cms.verify(_decoded_body(entity), None)[1]
    except Exception:              # noqa: BLE001 - as in check_signature
        return None


def inspect(raw: bytes, key: tuple[str, bytes] | None, now: float) -> tuple[dict[str, Any] | None, bytes | None]:
    """(the ``"smime"`` field of the REST view or None, the decrypted/unwrapped entity to render
    instead of the message body, or None). ``key``: the reader's (certificate PEM, PKCS#8 DER)."""
    if len(raw) > MAX_SMIME_BYTES:
        return None, None
    found = kind(raw)
    if found is None:
        return None, None
    sender = _from_address(raw)
    out: dict[str, Any] = {"signed": False, "encrypted": False}
    entity: bytes | None = raw
    inner: bytes | None = None
    if found == "enveloped":
        out["encrypted"] = True
        entity = None
        if key is not None:
            try:
                entity = inner = smime.decrypt(_decoded_body(raw), key[0], key[1])
            except Exception:             # not for this key, or not an EnvelopedData cryptography reads
                entity = None
        out["decrypted"] = entity is not None
    if entity is not None and kind(entity) in ("signed", "opaque"):
        out.update(check_signature(entity, sender, now)[0])
        if kind(entity) == "opaque":
            inner = opaque_content(entity)
    return out, inner


def collectable(raw: bytes, now: float) -> tuple[str, x509.Certificate] | None:
    """(From address, certificate) when ``raw`` is validly S/MIME-signed by a certificate that
    names its From address: what is kept as that correspondent's certificate."""
    if len(raw) > MAX_SMIME_BYTES or kind(raw) != "signed":
        return None
    sender = _from_address(raw)
    result, cert = check_signature(raw, sender, now)
    if not result.get("valid") or cert is None or sender is None:
        return None
    return sender, cert
