"""Verify a CMS SignedData (RFC 5652 §5) over detached content, as S/MIME signatures carry it.

``cryptography`` builds and decrypts PKCS#7 but has no verification, so the SignedData is read
here with a small BER/DER reader (definite and indefinite lengths: Outlook sends BER) and each
SignerInfo is checked by hand (§5.4, §5.6): with signed attributes, the ``message-digest``
attribute must equal the content's digest and the signature covers the attributes re-tagged as a
``SET OF`` (DER); without them, the signature covers the content itself. The signer is the
certificate the SignedData carries whose serial number (or subject key identifier) the SignerInfo
names. RSA (PKCS #1 v1.5 and PSS) and ECDSA with SHA-1/SHA-2 digests are understood; anything
else, or any malformed structure, is simply "not valid". No chain to a CA is built: the answer
is whether this certificate's key signed this content.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

MAX_DEPTH = 40

SIGNED_DATA = "1.2.840.113549.1.7.2"
MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
_DIGESTS: dict[str, type[hashes.HashAlgorithm]] = {
    "1.3.14.3.2.26": hashes.SHA1, "2.16.840.1.101.3.4.2.1": hashes.SHA256,
    "2.16.840.1.101.3.4.2.2": hashes.SHA384, "2.16.840.1.101.3.4.2.3": hashes.SHA512,
    "2.16.840.1.101.3.4.2.4": hashes.SHA224,
}
_RSA = {"1.2.840.113549.1.1.1", "1.2.840.113549.1.1.5", "1.2.840.113549.1.1.11", "1.2.840.113549.1.1.12",
        "1.2.840.113549.1.1.13", "1.2.840.113549.1.1.14"}
_RSA_PSS = "1.2.840.113549.1.1.10"
_ECDSA = {"1.2.840.10045.2.1", "1.2.840.10045.4.1", "1.2.840.10045.4.3.1", "1.2.840.10045.4.3.2",
          "1.2.840.10045.4.3.3", "1.2.840.10045.4.3.4"}


class CmsError(ValueError):
    """The bytes are not a SignedData this module can read."""


@dataclass
class Node:
    """One BER element: ``tag`` is the identifier octet; ``data[start:end]`` is the whole element
    (definite length only) and ``data[body:body_end]`` its contents."""

    data: bytes
    tag: int
    start: int
    body: int
    body_end: int
    end: int
    definite: bool
    kids: list[Node] | None = field(default=None, repr=False)

    @property
    def constructed(self) -> bool:
        return bool(self.tag & 0x20)

    @property
    def value(self) -> bytes:
        return self.data[self.body:self.body_end]

    @property
    def raw(self) -> bytes:
        return self.data[self.start:self.end]

    def children(self) -> list[Node]:
        if self.kids is None:
            self.kids = _children(self.data, self.body, self.body_end, self.definite, 0)
        return self.kids


def parse(data: bytes, pos: int = 0, depth: int = 0) -> Node:
    """The element at ``pos`` (its children parsed lazily, except indefinite-length ones)."""
    if depth > MAX_DEPTH or pos + 2 > len(data):
        raise CmsError("truncated or too deep")
    tag = data[pos]
    p = pos + 1
    if tag & 0x1F == 0x1F:                      # high tag number: not used by CMS, skipped over
        while p < len(data) and data[p] & 0x80:
            p += 1
        p += 1
    if p >= len(data):
        raise CmsError("truncated")
    first = data[p]
    p += 1
    if first == 0x80:
        if not tag & 0x20:
            raise CmsError("indefinite length on a primitive")
        kids = _children(data, p, len(data), False, depth + 1)
        stop = kids[-1].end if kids else p
        if data[stop:stop + 2] != b"\0\0":
            raise CmsError("missing end-of-contents")
        return Node(data, tag, pos, p, stop, stop + 2, False, kids)
    if first & 0x80:
        count = first & 0x7F
        if count > 4 or p + count > len(data):
            raise CmsError("bad length")
        length = int.from_bytes(data[p:p + count], "big")
        p += count
    else:
        length = first
    if p + length > len(data):
        raise CmsError("element overruns its container")
    return Node(data, tag, pos, p, p + length, p + length, True)


def _children(data: bytes, pos: int, end: int, definite: bool, depth: int) -> list[Node]:
    out = []
    while pos < end:
        if not definite and data[pos:pos + 2] == b"\0\0":
            break
        node = parse(data, pos, depth)
        if definite and node.end > end:
            raise CmsError("child overruns its parent")
        out.append(node)
        pos = node.end
    return out


def oid(node: Node) -> str:
    if node.tag != 0x06 or not node.value:
        raise CmsError("expected an OBJECT IDENTIFIER")
    raw = node.value
    parts, acc = [], 0
    for byte in raw:
        acc = (acc << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(acc)
            acc = 0
    first = min(parts[0] // 40, 2)
    return ".".join(str(n) for n in [first, parts[0] - 40 * first, *parts[1:]])


def octets(node: Node) -> bytes:
    """An OCTET STRING's bytes (a constructed BER one is the concatenation of its pieces)."""
    if node.tag == 0x04:
        return node.value
    if node.tag == 0x24:
        return b"".join(octets(k) for k in node.children())
    raise CmsError("expected an OCTET STRING")


@dataclass
class Signed:
    """A parsed SignedData: the certificates it carries and its SignerInfo elements."""

    certificates: list[x509.Certificate]
    signer_infos: list[Node]
    content: bytes | None        # encapsulated content (opaque signing), None when detached


def read_signed_data(der: bytes) -> Signed:
    info = parse(der)
    if info.end > len(der):
        raise CmsError("truncated")
    kids = info.children()
    if len(kids) < 2 or oid(kids[0]) != SIGNED_DATA or kids[1].tag != 0xA0:
        raise CmsError("not a SignedData ContentInfo")
    signed = kids[1].children()[0].children()
    encap = signed[2].children()
    content = octets(encap[1].children()[0]) if len(encap) > 1 else None
    certs: list[x509.Certificate] = []
    infos: list[Node] = []
    for part in signed[3:]:
        if part.tag == 0xA0:
            for cert in part.children():
                if cert.tag == 0x30 and cert.definite:
                    try:
                        certs.append(x509.load_der_x509_certificate(cert.raw))
                    except Exception:          # noqa: BLE001 - unreadable: not the signer's, skipped
                        continue
        elif part.tag == 0x31:
            infos = part.children()
    return Signed(certs, infos, content)


def _signer_cert(sid: Node, certs: list[x509.Certificate]) -> x509.Certificate | None:
    if sid.tag == 0x30:                                         # IssuerAndSerialNumber
        serial = int.from_bytes(sid.children()[1].value, "big", signed=True)
        return next((c for c in certs if c.serial_number == serial), None)
    if sid.tag == 0x80:                                         # [0] SubjectKeyIdentifier
        for cert in certs:
            try:
                ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
            except x509.ExtensionNotFound:
                continue
            if ski == sid.value:
                return cert
    return None


def _check(cert: x509.Certificate, sig_alg: str, digest: hashes.HashAlgorithm, signature: bytes,
           message: bytes) -> None:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey) and sig_alg in _RSA:
        key.verify(signature, message, padding.PKCS1v15(), digest)
    elif isinstance(key, rsa.RSAPublicKey) and sig_alg == _RSA_PSS:
        key.verify(signature, message, padding.PSS(padding.MGF1(digest), padding.PSS.AUTO), digest)
    elif isinstance(key, ec.EllipticCurvePublicKey) and sig_alg in _ECDSA:
        key.verify(signature, message, ec.ECDSA(digest))
    else:
        raise InvalidSignature(f"unsupported signature algorithm {sig_alg}")


def verify_signer(info: Node, certs: list[x509.Certificate], content: bytes) -> x509.Certificate:
    """The certificate whose key made this SignerInfo's signature over ``content``; raises
    ``InvalidSignature`` or ``CmsError`` otherwise."""
    kids = info.children()
    cert = _signer_cert(kids[1], certs)
    if cert is None:
        raise InvalidSignature("the signer's certificate is not in the message")
    digest_cls = _DIGESTS.get(oid(kids[2].children()[0]))
    if digest_cls is None:
        raise InvalidSignature("unsupported digest algorithm")
    rest = kids[3:]
    attrs = rest.pop(0) if rest and rest[0].tag == 0xA0 else None
    sig_alg = oid(rest[0].children()[0])
    signature = octets(rest[1])
    if attrs is None:
        message = content
    else:
        if not attrs.definite:
            raise CmsError("signed attributes must be DER")
        wanted = hashes.Hash(digest_cls())
        wanted.update(content)
        found = [octets(a.children()[1].children()[0]) for a in attrs.children()
                 if oid(a.children()[0]) == MESSAGE_DIGEST]
        if found != [wanted.finalize()]:
            raise InvalidSignature("the content does not match the signed digest")
        message = b"\x31" + attrs.data[attrs.start + 1:attrs.end]
    _check(cert, sig_alg, digest_cls(), signature, message)
    return cert


def verify(der: bytes, content: bytes | None) -> tuple[x509.Certificate, bytes]:
    """(signer certificate, signed content) when a SignerInfo of the SignedData ``der`` verifies over
    ``content`` (detached) or its own encapsulated content; raises ``InvalidSignature``/``CmsError``."""
    try:
        signed = read_signed_data(der)
    except (IndexError, ValueError) as exc:
        raise CmsError(f"unreadable SignedData: {exc}") from exc
    data = content if content is not None else signed.content
    if data is None or not signed.signer_infos:
        raise CmsError("nothing signed")
    failure: Exception = InvalidSignature("no signer")
    for info in signed.signer_infos:
        try:
            return verify_signer(info, signed.certificates, data), data
        except Exception as exc:      # noqa: BLE001 - any malformed SignerInfo is "not this signer"
            failure = exc
    raise failure
