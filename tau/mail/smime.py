"""S/MIME (RFC 8551) for TauMail with ``cryptography``: certificates, signing, encryption.

- ``PUT /api/keys/smime`` ``{"pkcs12": base64, "password"?}``: a PKCS#12 bundle with an RSA key
  and its certificate, which must name the user's address (subjectAltName rfc822Name or the
  subject's emailAddress) and be valid now. The certificate is kept as PEM; the private key as
  PKCS#8 sealed with AES-256-GCM under a key derived from the installation secret (label
  ``smime:aes-256-gcm``, the user id as associated data), as TOTP secrets are; the p12 password is
  never stored. So, unlike PGP, signing needs no passphrase in each request.
- Signing (RFC 8551 §3.5.3): ``multipart/signed; protocol="application/pkcs7-signature";
  micalg=sha-256`` with a detached SignedData (signed attributes, SHA-256, PKCS #1 v1.5) over the
  CRLF-canonical body entity, the signer's certificate included.
- Encryption (§3.3): ``application/pkcs7-mime; smime-type=enveloped-data`` (EnvelopedData,
  AES-256-CBC — ``cryptography`` cannot build AuthEnvelopedData/AES-GCM — with RSA key transport)
  to every recipient plus the sender, so the Sent copy stays readable. With both, the signed
  entity is encrypted (sign-then-encrypt, §3.6).

Everything here is blocking: callers run it in a worker thread. Verification is
:mod:`tau.mail.smime_cms`; reading received mail :mod:`tau.mail.smime_read`; rows
:mod:`tau.mail.smime_store`; routes :mod:`tau.mail.smime_api`.
"""

from __future__ import annotations

import base64
import datetime
import os
import uuid
from email.message import EmailMessage
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.x509.oid import NameOID

MAX_PKCS12 = 64 * 1024
MAX_CERTIFICATE = 32 * 1024
SIGNATURE_PROTOCOLS = ("application/pkcs7-signature", "application/x-pkcs7-signature")


# -- certificates ---------------------------------------------------------------------------

def addresses(cert: x509.Certificate) -> list[str]:
    """The mail addresses a certificate names, lower-cased (RFC 8550 §3)."""
    found: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        found += [str(a) for a in san.get_values_for_type(x509.RFC822Name)]
    except x509.ExtensionNotFound:
        pass
    found += [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)]
    return list(dict.fromkeys(a.strip().lower() for a in found if a.strip()))


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def describe(cert: x509.Certificate) -> dict[str, Any]:
    """What the REST API shows of a certificate (never a key)."""
    def when(t: datetime.datetime) -> str:
        return t.astimezone(datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

    return {"fingerprint": fingerprint(cert), "subject": cert.subject.rfc4514_string(),
            "issuer": cert.issuer.rfc4514_string(), "serial": format(cert.serial_number, "x"),
            "addresses": addresses(cert), "not_before": when(cert.not_valid_before_utc),
            "not_after": when(cert.not_valid_after_utc)}


def check_certificate(cert: x509.Certificate, address: str, now: float) -> None:
    """ValueError unless ``cert`` names ``address``, is valid at ``now`` and holds an RSA key."""
    if address.lower() not in addresses(cert):
        raise ValueError(f"the certificate does not name {address}")
    if not cert.not_valid_before_utc.timestamp() <= now <= cert.not_valid_after_utc.timestamp():
        raise ValueError("the certificate is expired or not yet valid")
    if not isinstance(cert.public_key(), rsa.RSAPublicKey):
        raise ValueError("only RSA certificates are supported (S/MIME key transport)")


def load_certificate(data: str | bytes) -> x509.Certificate:
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > MAX_CERTIFICATE:
        raise ValueError("certificate too large")
    if b"-----BEGIN" in raw:
        return x509.load_pem_x509_certificate(raw)
    return x509.load_der_x509_certificate(raw)


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def check_pkcs12(address: str, data: bytes, password: str | None, now: float) -> tuple[x509.Certificate, bytes]:
    """(certificate, PKCS#8 DER of its private key) from a PKCS#12 upload; ValueError explains."""
    if len(data) > MAX_PKCS12:
        raise ValueError("PKCS#12 bundle too large")
    try:
        key, cert, _extra = pkcs12.load_key_and_certificates(data, password.encode() if password else None)
    except ValueError as exc:
        raise ValueError("cannot open the PKCS#12 bundle (wrong password or not PKCS#12)") from exc
    if key is None or cert is None:
        raise ValueError("the PKCS#12 bundle must hold a private key and its certificate")
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("only RSA keys are supported (S/MIME key transport)")
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        raise ValueError("the private key does not match the certificate")
    check_certificate(cert, address, now)
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return cert, der


# -- the private key at rest --------------------------------------------------------------------

def _aead(keys: Any) -> AESGCM:
    return AESGCM(keys.derive("smime:aes-256-gcm"))


def seal(keys: Any, key_der: bytes, user_id: int) -> str:
    nonce = os.urandom(12)
    return base64.b64encode(nonce + _aead(keys).encrypt(nonce, key_der, f"smime:{user_id}".encode())).decode()


def unseal(keys: Any, sealed: str, user_id: int) -> bytes:
    raw = base64.b64decode(sealed)
    return _aead(keys).decrypt(raw[:12], raw[12:], f"smime:{user_id}".encode())


def private_key(key_der: bytes) -> rsa.RSAPrivateKey:
    key = serialization.load_der_private_key(key_der, None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA key")
    return key


# -- outgoing -------------------------------------------------------------------------------

def _base64_lines(data: bytes) -> bytes:
    text = base64.b64encode(data)
    return b"\r\n".join(text[i:i + 76] for i in range(0, len(text), 76)) + b"\r\n"


def sign(content: bytes, cert_pem: str, key_der: bytes) -> tuple[str, bytes]:
    """(Content-Type, body) of a ``multipart/signed`` entity over ``content`` (CRLF canonical)."""
    cert = load_certificate(cert_pem)
    signature = (pkcs7.PKCS7SignatureBuilder().set_data(content)
                 .add_signer(cert, private_key(key_der), hashes.SHA256())
                 .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature,
                                                    pkcs7.PKCS7Options.Binary]))
    boundary = f"=_tau_smime_{uuid.uuid4().hex}"
    body = (f"This is an S/MIME signed message (RFC 8551)\r\n--{boundary}\r\n".encode() + content
            + f"\r\n--{boundary}\r\nContent-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\n"
              "Content-Transfer-Encoding: base64\r\n"
              "Content-Disposition: attachment; filename=\"smime.p7s\"\r\n"
              "Content-Description: S/MIME Cryptographic Signature\r\n\r\n".encode()
            + _base64_lines(signature) + f"--{boundary}--\r\n".encode())
    return (f'multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; boundary="{boundary}"',
            body)


ENVELOPED_TYPE = 'application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"'


def encrypt(content: bytes, cert_pems: list[str]) -> bytes:
    """The base64 body of an ``application/pkcs7-mime`` enveloped-data entity (AES-256-CBC)."""
    builder = pkcs7.PKCS7EnvelopeBuilder().set_data(content).set_content_encryption_algorithm(algorithms.AES256)
    for cert_pem in cert_pems:
        builder = builder.add_recipient(load_certificate(cert_pem))
    return _base64_lines(builder.encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary]))


def protect(content: bytes, cert_pem: str | None, key_der: bytes | None, recipients: list[str],
            encrypt_it: bool, sign_it: bool) -> tuple[list[tuple[str, str]], bytes]:
    """(content headers, body) of the S/MIME entity wrapping the body entity ``content``."""
    headers: list[tuple[str, str]] = []
    body = content
    if sign_it:
        assert cert_pem is not None and key_der is not None
        ctype, body = sign(content, cert_pem, key_der)
        headers = [("Content-Type", ctype)]
    if encrypt_it:
        inner = b"".join(f"{k}: {v}\r\n".encode() for k, v in headers) + b"\r\n" + body if headers else content
        body = encrypt(inner, recipients)
        headers = [("Content-Type", ENVELOPED_TYPE), ("Content-Transfer-Encoding", "base64"),
                   ("Content-Disposition", 'attachment; filename="smime.p7m"'),
                   ("Content-Description", "S/MIME Encrypted Message")]
    return headers, body


def wrap(msg: EmailMessage, headers: list[tuple[str, str]], body: bytes) -> bytes:
    """The outer message: ``msg``'s headers (no content headers) + the S/MIME entity."""
    from tau.mail.compose import as_bytes

    for name in ("Content-Type", "Content-Transfer-Encoding", "Content-Disposition"):
        del msg[name]
    head = as_bytes(msg).split(b"\r\n\r\n", 1)[0]
    return head + b"".join(f"\r\n{k}: {v}".encode() for k, v in headers) + b"\r\n\r\n" + body


def decrypt(der: bytes, cert_pem: str, key_der: bytes) -> bytes:
    """The content of an EnvelopedData addressed to this certificate (ValueError otherwise)."""
    return pkcs7.pkcs7_decrypt_der(der, load_certificate(cert_pem), private_key(key_der), [])
