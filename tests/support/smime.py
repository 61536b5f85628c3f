"""S/MIME test material: self-signed RSA certificates naming an address, their PKCS#12 bundles
(password ``"pw-" + address``), signed mail made by the ``openssl`` CLI, and openssl checks."""

from __future__ import annotations

import base64
import datetime
import subprocess
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Identity:
    address: str
    key: rsa.RSAPrivateKey
    cert: x509.Certificate
    p12: bytes

    @property
    def password(self) -> str:
        return "pw-" + self.address

    @property
    def cert_pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    @property
    def key_der(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    def upload_body(self, password: str | None = None) -> dict[str, str]:
        return {"pkcs12": base64.b64encode(self.p12).decode(),
                "password": self.password if password is None else password}


@cache
def identity(address: str, expired: bool = False, variant: int = 0) -> Identity:
    """A self-signed certificate naming ``address`` (subjectAltName) and its PKCS#12 bundle (another
    ``variant``: another key and certificate for the same address)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address.split("@")[0]),
                      x509.NameAttribute(NameOID.EMAIL_ADDRESS, address)])
    now = datetime.datetime.now(datetime.UTC)
    start = now - datetime.timedelta(days=400 if expired else 1)
    end = now - datetime.timedelta(days=1) if expired else now + datetime.timedelta(days=365)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(address)]), critical=False)
            .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
            .sign(key, hashes.SHA256()))
    p12 = pkcs12.serialize_key_and_certificates(address.encode(), key, cert, None,
                                                serialization.BestAvailableEncryption(f"pw-{address}".encode()))
    return Identity(address, key, cert, p12)


def openssl(*args: str, input: bytes | None = None, files: dict[str, bytes] | None = None) -> tuple[int, bytes, bytes]:
    """Run ``openssl`` in a scratch folder holding ``files``; ``{name}`` in args is that file's path."""
    with tempfile.TemporaryDirectory() as folder:
        paths = {}
        for name, data in (files or {}).items():
            path = Path(folder) / name
            path.write_bytes(data)
            paths[name] = str(path)
        argv = ["openssl", *(a.format(**paths) for a in args)]
        done = subprocess.run(argv, input=input, capture_output=True, timeout=60)
        return done.returncode, done.stdout, done.stderr


def openssl_signed(signer: Identity, to: str, subject: str, text: str, opaque: bool = False) -> bytes:
    """A message S/MIME-signed by ``openssl smime -sign`` (detached multipart/signed by default)."""
    content = f"Content-Type: text/plain; charset=us-ascii\r\n\r\n{text}\r\n".encode()
    code, out, err = openssl("smime", "-sign", *(["-nodetach"] if opaque else []),
                             "-signer", "{cert}", "-inkey", "{key}", "-from", signer.address, "-to", to,
                             "-subject", subject, "-binary", "-in", "{content}",
                             files={"cert": signer.cert_pem.encode(), "key": signer.key_pem, "content": content})
    assert code == 0, err
    return out.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def verify_with_openssl(raw: bytes, signer: Identity) -> bytes:
    """The signed content when ``openssl smime -verify`` accepts ``raw`` (signer's cert as the CA)."""
    code, out, err = openssl("smime", "-verify", "-in", "{msg}", "-CAfile", "{ca}", "-purpose", "any",
                             files={"msg": raw, "ca": signer.cert_pem.encode()})
    assert code == 0 and b"Verification successful" in err, err
    return out


def decrypt_with_openssl(raw: bytes, recipient: Identity) -> bytes:
    code, out, err = openssl("smime", "-decrypt", "-in", "{msg}", "-recip", "{cert}", "-inkey", "{key}",
                             files={"msg": raw, "cert": recipient.cert_pem.encode(), "key": recipient.key_pem})
    assert code == 0, err
    return out
