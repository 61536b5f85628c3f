"""Server-side TLS: the ``[tls]`` certificate, its reloadable OpenSSL context, SIGHUP wiring.

One :class:`TLSContext` serves every TLS listener (``TLSMemoryBIOFactory`` in
``tau.net.endpoints``) and every STARTTLS upgrade (``transport.startTLS(ctx)``). It hands each new
connection the *current* ``OpenSSL.SSL.Context``; :meth:`TLSContext.reload` builds a fresh one
from the files and swaps a single attribute, so certificate renewal needs no rebinding and open
connections keep the context they were born with.

Policy: TLS 1.2 minimum, ECDHE + AEAD ciphers for TLS 1.2 (OpenSSL defaults for TLS 1.3), server
cipher preference, no compression, no renegotiation. The certificate file may hold a whole chain
(Let's Encrypt ``fullchain.pem``); every certificate after the first is sent as chain.
"""

from __future__ import annotations

import datetime
import errno
import ipaddress
import os
import signal
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import SSL
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IOpenSSLContextFactory,
    IOpenSSLServerConnectionCreator,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

log = Logger()

# Mozilla "intermediate" TLS 1.2 suites minus DHE (no DH parameters to manage): forward secrecy
# and AEAD only. TLS 1.3 suites are all AEAD and use OpenSSL's defaults.
TLS12_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)

_OPTIONS = (
    SSL.OP_NO_COMPRESSION  # CRIME
    | SSL.OP_CIPHER_SERVER_PREFERENCE
    | SSL.OP_NO_RENEGOTIATION  # client-initiated renegotiation is a DoS lever
    | SSL.OP_SINGLE_ECDH_USE
)


class TLSConfigError(Exception):
    """The ``[tls]`` files cannot be used; the message is one line naming the file."""


# --------------------------------------------------------------------------- self-signed


def make_self_signed(hostname: str, cert_path: Path, key_path: Path, days: int = 825) -> None:
    """Write a fresh RSA-2048 key and a self-signed certificate for ``hostname``.

    Used by ``tau init`` so TLS works before a real certificate exists. The SAN always includes
    localhost, 127.0.0.1 and ::1 so local clients can verify against the certificate itself
    (``ssl.create_default_context(cafile=cert)``). CA stays FALSE: browsers reject CA
    certificates used as server certificates, and OpenSSL accepts a self-signed leaf as its own
    trust anchor. 825 days is the longest leaf lifetime Apple clients accept. Never overwrites.
    """
    if not hostname:
        raise ValueError("hostname must not be empty")
    cert_path, key_path = Path(cert_path), Path(key_path)
    if cert_path == key_path:
        raise ValueError(f"certificate and key must be different files: {cert_path}")
    for path in (key_path, cert_path):
        if path.exists() or path.is_symlink():
            raise FileExistsError(errno.EEXIST, "refusing to overwrite", str(path))

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = _self_signed_cert(hostname, key, days)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())

    for parent in {key_path.parent, cert_path.parent}:
        if not parent.exists():
            parent.mkdir(mode=0o700, parents=True)
    _write_new(key_path, key_pem, 0o600)
    try:
        _write_new(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    except BaseException:
        key_path.unlink(missing_ok=True)  # a key without its certificate is just litter
        raise


def _self_signed_cert(hostname: str, key: rsa.RSAPrivateKey, days: int) -> x509.Certificate:
    ascii_name = _ascii_host(hostname)
    names: list[x509.GeneralName] = []
    for entry in (ascii_name, "localhost", "127.0.0.1", "::1"):
        try:
            general: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(entry))
        except ValueError:
            general = x509.DNSName(entry)
        if general not in names:
            names.append(general)
    # CN is capped at 64 characters; clients match on the SAN anyway.
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ascii_name)]
                        if len(ascii_name) <= 64 else [])
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))  # tolerate client clock skew
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_encipherment=True, content_commitment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=False,
                          crl_sign=False, encipher_only=False, decipher_only=False),
            critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        # Strict verifiers (Python 3.13's VERIFY_X509_STRICT) want an AKI.
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def _ascii_host(hostname: str) -> str:
    try:
        return str(ipaddress.ip_address(hostname))
    except ValueError:
        return hostname.rstrip(".").encode("idna").decode("ascii").lower()


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` from the first byte on (O_EXCL: no overwrite, no symlink)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class _Loaded:
    """Everything one load produced; swapped as a unit so readers never see a mix."""

    context: SSL.Context
    chain: tuple[x509.Certificate, ...]
    key_type: str


def _read(label: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise TLSConfigError(f"{label} {path}: file not found") from None
    except PermissionError:
        raise TLSConfigError(f"{label} {path}: permission denied") from None
    except OSError as exc:
        raise TLSConfigError(f"{label} {path}: cannot read: {exc.strerror or exc}") from None


def _load(cert_path: Path, key_path: Path) -> _Loaded:
    cert_data = _read("TLS certificate", cert_path)
    key_data = _read("TLS private key", key_path)

    if b"-----BEGIN" not in cert_data:
        raise TLSConfigError(f"TLS certificate {cert_path}: not PEM (no -----BEGIN line)")
    try:
        chain = tuple(x509.load_pem_x509_certificates(cert_data))
    except ValueError:
        raise TLSConfigError(f"TLS certificate {cert_path}: no valid PEM certificate") from None

    if b"-----BEGIN" not in key_data:
        raise TLSConfigError(f"TLS private key {key_path}: not PEM (no -----BEGIN line)")
    try:
        key = serialization.load_pem_private_key(key_data, password=None)
    except TypeError:
        raise TLSConfigError(f"TLS private key {key_path}: key is encrypted; "
                             "tau needs it unencrypted") from None
    except (ValueError, UnsupportedAlgorithm):
        raise TLSConfigError(f"TLS private key {key_path}: no valid PEM private key") from None

    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    ctx.set_options(_OPTIONS)
    ctx.set_mode(SSL.MODE_RELEASE_BUFFERS)
    ctx.set_cipher_list(TLS12_CIPHERS.encode("ascii"))
    ctx.set_session_id(b"tau")
    try:
        ctx.use_certificate(chain[0])
        for extra in chain[1:]:
            ctx.add_extra_chain_cert(extra)
    except SSL.Error as exc:
        raise TLSConfigError(f"TLS certificate {cert_path}: rejected by OpenSSL: "
                             f"{_ssl_reason(exc)}") from None
    mismatch = TLSConfigError(f"TLS private key {key_path} does not match the certificate "
                              f"in {cert_path}")
    try:
        ctx.use_privatekey(key)  # type: ignore[arg-type]  # DH/X25519 keys: TypeError below
    except (SSL.Error, TypeError) as exc:
        reason = _ssl_reason(exc)
        if "mismatch" in reason:  # OpenSSL compares the key with the certificate already set
            raise mismatch from None
        raise TLSConfigError(f"TLS private key {key_path}: rejected by OpenSSL: {reason}") from None
    try:
        ctx.check_privatekey()
    except SSL.Error:
        raise mismatch from None

    _warn_about(cert_path, key_path, chain[0])
    return _Loaded(ctx, chain, _key_type(key))


def _ssl_reason(exc: Exception) -> str:
    if isinstance(exc, SSL.Error) and exc.args and isinstance(exc.args[0], list) and exc.args[0]:
        return str(exc.args[0][0][-1])
    return str(exc).replace("\n", " ") or exc.__class__.__name__


def _key_type(key: Any) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return f"EC {key.curve.name}"
    name: str = key.__class__.__name__
    return name.removeprefix("_")


def _warn_about(cert_path: Path, key_path: Path, leaf: x509.Certificate) -> None:
    """Things worth a log line but not a refusal (the operator may be mid-renewal)."""
    if leaf.not_valid_after_utc <= datetime.datetime.now(datetime.UTC):
        log.warn("TLS certificate {path} expired on {when}",  # noqa: G010 - twisted Logger API
                 path=str(cert_path), when=leaf.not_valid_after_utc.isoformat())
    try:
        if key_path.stat().st_mode & stat.S_IROTH:
            log.warn("TLS private key {path} is world-readable; chmod 600 it",  # noqa: G010
                     path=str(key_path))
    except OSError:
        pass


# --------------------------------------------------------------------------- the context


@implementer(IOpenSSLServerConnectionCreator, IOpenSSLContextFactory)
class TLSContext:
    """Reloadable server TLS configuration for listeners and STARTTLS alike.

    Provides ``IOpenSSLServerConnectionCreator`` (what ``TLSMemoryBIOFactory`` and
    ``ITLSTransport.startTLS`` prefer) and ``IOpenSSLContextFactory`` (the legacy fallback both
    still accept). Each call returns an object built from the current context, so a reload is
    visible to the next connection without re-wrapping any factory.
    """

    def __init__(self, cert_path: Path | str, key_path: Path | str) -> None:
        self.cert_path = Path(cert_path)
        self.key_path = Path(key_path)
        self._loaded = _load(self.cert_path, self.key_path)

    # -- Twisted interfaces

    def serverConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        """IOpenSSLServerConnectionCreator: a connection on the context current right now."""
        return SSL.Connection(self._loaded.context, None)

    def getContext(self) -> SSL.Context:
        """IOpenSSLContextFactory: the current context (for code that wants a Context)."""
        return self._loaded.context

    def server_context_factory(self) -> TLSContext:
        """What to pass to ``transport.startTLS``: this object, so reloads apply there too."""
        return self

    # -- reload

    def reload(self) -> bool:
        """Re-read both files; on success new connections use them, else nothing changes."""
        try:
            loaded = _load(self.cert_path, self.key_path)
        except TLSConfigError as exc:
            log.error("TLS reload failed, still serving the previous certificate: {error}",
                      error=str(exc))
            return False
        except Exception:  # noqa: BLE001 - a reload must never take the daemon down
            log.failure("TLS reload failed, still serving the previous certificate")
            return False
        self._loaded = loaded  # one attribute store: atomic for every reader
        leaf = loaded.chain[0]
        log.info("TLS certificate reloaded: {subject}, serial {serial:x}, expires {expires}",
                 subject=leaf.subject.rfc4514_string(), serial=leaf.serial_number,
                 expires=leaf.not_valid_after_utc.isoformat())
        return True

    # -- introspection for `tau check` and health

    @property
    def certificate(self) -> x509.Certificate:
        """The leaf certificate being served."""
        return self._loaded.chain[0]

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """Leaf first, then the intermediates sent with it."""
        return self._loaded.chain

    @property
    def expires_at(self) -> datetime.datetime:
        """Not-after of the leaf, timezone-aware UTC."""
        return self._loaded.chain[0].not_valid_after_utc

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary: subject, SAN, validity, chain length, key type, fingerprint."""
        loaded = self._loaded
        leaf = loaded.chain[0]
        return {
            "certificate": str(self.cert_path),
            "private_key": str(self.key_path),
            "subject": leaf.subject.rfc4514_string(),
            "issuer": leaf.issuer.rfc4514_string(),
            "san": _san(leaf),
            "serial": format(leaf.serial_number, "x"),
            "not_before": leaf.not_valid_before_utc.isoformat(),
            "not_after": leaf.not_valid_after_utc.isoformat(),
            "self_signed": leaf.issuer == leaf.subject,
            "chain_length": len(loaded.chain),
            "key_type": loaded.key_type,
            "sha256": leaf.fingerprint(hashes.SHA256()).hex(),
        }

    def __repr__(self) -> str:
        return f"<TLSContext {self.cert_path} expires {self.expires_at.isoformat()}>"


def _san(cert: x509.Certificate) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return ([f"DNS:{name}" for name in ext.get_values_for_type(x509.DNSName)]
            + [f"IP:{ip}" for ip in ext.get_values_for_type(x509.IPAddress)])


def load_tls(cert_path: Path | str, key_path: Path | str) -> TLSContext:
    """Load the ``[tls]`` files or raise :class:`TLSConfigError` with a one-line reason."""
    return TLSContext(cert_path, key_path)


# --------------------------------------------------------------------------- SIGHUP


def install_sighup_reload(reactor: Any, callbacks: list[Callable[[], object]]) -> Callable[[], None]:
    """Run every callback on the reactor thread when SIGHUP arrives; return an uninstaller.

    The signal handler itself only calls ``reactor.callFromThread``: Python runs handlers
    between bytecodes of the main thread, possibly inside reactor code, so real work must wait
    for the reactor's own loop. ``callbacks`` is read at signal time, so later appends count. A
    failing callback (or one whose Deferred fails) is logged and the others still run.
    Must be called from the main thread; on platforms without SIGHUP it does nothing.
    """
    sighup = getattr(signal, "SIGHUP", None)
    if sighup is None:
        return lambda: None

    def run_all() -> None:
        log.info("SIGHUP: running {count} reload callback(s)", count=len(callbacks))
        for callback in list(callbacks):
            try:
                result = callback()
            except Exception:  # noqa: BLE001 - one bad callback must not stop the rest
                log.failure("SIGHUP reload callback {callback!r} failed", callback=callback)
                continue
            if isinstance(result, Deferred):
                result.addErrback(_log_async_failure, callback)

    def handler(signum: int, frame: FrameType | None) -> None:
        reactor.callFromThread(run_all)

    previous = signal.signal(sighup, handler)

    def uninstall() -> None:
        # Only undo our own handler; if someone replaced it since, theirs stays.
        if signal.getsignal(sighup) is handler:
            signal.signal(sighup, previous if previous is not None else signal.SIG_DFL)

    return uninstall


def _log_async_failure(failure: Failure, callback: Callable[[], object]) -> None:
    log.failure("SIGHUP reload callback {callback!r} failed", failure=failure, callback=callback)
