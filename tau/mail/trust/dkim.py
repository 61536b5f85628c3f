"""DKIM (RFC 6376) with dkimpy: keys, signing of outgoing mail, verification of inbound mail.

Keys live in ``DATA_DIR/<[dkim] keys_dir>/<domain>/<selector>.<rsa|ed25519>.key`` (mode 0600):
PEM for RSA (2048 bits, rsa-sha256), the base64 32-byte seed for Ed25519 (RFC 8463,
ed25519-sha256). A domain with both is signed twice, as RFC 8463 §3 suggests, so verifiers that
do not know Ed25519 still find the RSA signature. Signing and verifying hash the whole message
and are CPU work: callers run them in a worker thread. Verification looks the selector keys up
asynchronously first (our resolver), then hands dkimpy a ``dnsfunc`` that answers from them.
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dkim

SIGNED_HEADERS = [b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"reply-to", b"in-reply-to",
                  b"references", b"mime-version", b"content-type", b"content-transfer-encoding", b"autocrypt"]
_KEYFILE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_-]{0,62})\.(rsa|ed25519)\.key$")


@dataclass(frozen=True)
class DkimKey:
    domain: str
    selector: str
    algorithm: str          # rsa | ed25519
    private: bytes

    @property
    def signature_algorithm(self) -> bytes:
        return b"ed25519-sha256" if self.algorithm == "ed25519" else b"rsa-sha256"


def keys_dir(config: Any) -> Path:
    return config.data_path(config.dkim.keys_dir)


def generate(algorithm: str) -> tuple[bytes, str]:
    """(private key file content, public key for the TXT record ``p=``)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    if algorithm == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
        seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
        public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(seed) + b"\n", base64.b64encode(public).decode()
    if algorithm != "rsa":
        raise ValueError(f"unknown DKIM key algorithm {algorithm!r} (rsa | ed25519)")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    der = rsa_key.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, base64.b64encode(der).decode()


def txt_record(algorithm: str, public: str) -> str:
    """The DNS TXT value (RFC 6376 §3.6.1; k=ed25519 from RFC 8463 §4.2)."""
    return f"v=DKIM1; k={'ed25519' if algorithm == 'ed25519' else 'rsa'}; p={public}"


def public_from_private(key: DkimKey) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    if key.algorithm == "ed25519":
        priv = ed25519.Ed25519PrivateKey.from_private_bytes(base64.b64decode(key.private))
        raw = priv.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode()
    rsa_key = serialization.load_pem_private_key(key.private, password=None)
    der = rsa_key.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def write_key(folder: Path, domain: str, selector: str, algorithm: str, force: bool = False) -> tuple[Path, str]:
    """Create a key file; returns (path, TXT value). Refuses to overwrite unless ``force``."""
    domain = domain.lower().rstrip(".")
    if not re.fullmatch(r"[a-z0-9.-]+", domain) or ".." in domain or not _KEYFILE.match(f"{selector}.rsa.key"):
        raise ValueError("invalid domain or selector")
    target = folder / domain
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = target / f"{selector}.{algorithm}.key"
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists (use --force to replace it)")
    private, public = generate(algorithm)
    # O_EXCL: of two concurrent keygens (admin page, CLI) for one selector exactly one wins
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL), 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private)
    return path, txt_record(algorithm, public)


def load_keys(folder: Path) -> dict[str, list[DkimKey]]:
    """domain → its keys (Ed25519 first)."""
    out: dict[str, list[DkimKey]] = {}
    if not folder.is_dir():
        return out
    for domain_dir in sorted(folder.iterdir()):
        if not domain_dir.is_dir():
            continue
        for file in sorted(domain_dir.iterdir()):
            m = _KEYFILE.match(file.name)
            if m:
                out.setdefault(domain_dir.name.lower(), []).append(
                    DkimKey(domain_dir.name.lower(), m.group(1), m.group(2), file.read_bytes().strip()))
    for keys in out.values():
        keys.sort(key=lambda k: k.algorithm != "ed25519")
    return out


def sign(message: bytes, keys: list[DkimKey]) -> bytes:
    """``DKIM-Signature`` header lines (CRLF-terminated) to prepend, one per key.

    Each signature covers the message as sent (signatures are not signed by one another):
    relaxed/relaxed canonicalization survives the header re-folding relays do.
    """
    out = b""
    for key in keys:
        present = {line.split(b":", 1)[0].strip().lower() for line in message.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
                   if b":" in line and not line[:1].isspace()}
        headers = [h for h in SIGNED_HEADERS if h in present] or [b"from"]
        out += _sign_one(message, key.selector.encode(), key.domain.encode(), key.private,
                         canonicalize=(b"relaxed", b"relaxed"), signature_algorithm=key.signature_algorithm,
                         include_headers=headers, linesep=b"\r\n")
    return out


def _sign_one(message: bytes, selector: bytes, domain: bytes, private: bytes, **kwargs: Any) -> bytes:
    """One signature; a key that cannot sign (e.g. Ed25519 without PyNaCl) is skipped, not fatal."""
    try:
        if kwargs.get("signature_algorithm") == b"rsa-sha256":
            from tau.mail.trust.dkim_rsa import sign_rsa

            kwargs.pop("signature_algorithm")
            return sign_rsa(message, selector, domain, private, **kwargs)
        return dkim.sign(message, selector, domain, private, **kwargs)
    except (dkim.DKIMException, ValueError) as exc:
        import logging

        logging.getLogger("tau.dkim").warning("DKIM key %s for %s cannot sign: %s", selector, domain, exc)
        return b""


@dataclass(frozen=True)
class DkimResult:
    result: str            # pass | fail | neutral | temperror | permerror | none (RFC 8601 §2.7.1)
    domain: str = ""       # d=
    selector: str = ""
    algorithm: str = ""


_TAG = re.compile(rb"(?:^|;)\s*([a-z]+)\s*=\s*([^;]*)")


def signatures(message: bytes) -> list[dict[str, str]]:
    """The tags of each DKIM-Signature header (d, s, a...), in order."""
    head = message.split(b"\r\n\r\n", 1)[0]
    out = []
    for field in re.split(rb"\r\n(?![ \t])", head):
        name, _, value = field.partition(b":")
        if name.strip().lower() == b"dkim-signature":
            tags = {k.decode(): re.sub(rb"\s+", b"", v).decode("ascii", "replace")
                    for k, v in _TAG.findall(value.replace(b"\r\n", b""))}
            out.append(tags)
    return out


def verify(message: bytes, txt: dict[str, list[str]]) -> list[DkimResult]:
    """Verify every signature (blocking; thread). ``txt`` maps ``s._domainkey.d`` → TXT strings,
    looked up beforehand; a name missing from it is a DNS failure (temperror)."""
    found = signatures(message)
    results = []
    for idx, tags in enumerate(found):
        name = f"{tags.get('s', '')}._domainkey.{tags.get('d', '')}".lower()
        records = txt.get(name)
        if records is None:
            results.append(DkimResult("temperror", tags.get("d", ""), tags.get("s", ""), tags.get("a", "")))
            continue

        def dnsfunc(qname: bytes, timeout: int = 5, _records: list[str] = records) -> bytes | None:
            return _records[0].encode() if _records else None

        try:
            checker = dkim.DKIM(message, minkey=1024)
            ok = checker.verify(idx=idx, dnsfunc=dnsfunc)
            outcome = "pass" if ok else ("permerror" if not records else "fail")
        except dkim.KeyFormatError:
            outcome = "permerror"
        except dkim.ValidationError:
            outcome = "permerror" if not records else "fail"
        except Exception:
            outcome = "permerror"
        results.append(DkimResult(outcome, tags.get("d", "").lower(), tags.get("s", ""), tags.get("a", "")))
    return results
