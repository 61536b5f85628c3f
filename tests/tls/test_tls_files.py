"""tau.net.tls without sockets: self-signed generation, loading errors, reload, SIGHUP plumbing."""

from __future__ import annotations

import datetime
import ipaddress
import os
import signal
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import SSL
from twisted.internet.defer import fail
from twisted.internet.interfaces import (
    IOpenSSLContextFactory,
    IOpenSSLServerConnectionCreator,
)
from twisted.logger import LogLevel, globalLogPublisher

from tau.net.tls import (
    TLSConfigError,
    TLSContext,
    install_sighup_reload,
    load_tls,
    make_self_signed,
)

if TYPE_CHECKING:
    from conftest import Chain


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One self-signed pair shared by the read-only tests (RSA generation is the slow part)."""
    d = tmp_path_factory.mktemp("pair") / "tls"
    make_self_signed("mail.example.org", d / "cert.pem", d / "key.pem")
    return d / "cert.pem", d / "key.pem"


@pytest.fixture
def log_events() -> Iterator[list[dict[str, Any]]]:
    """Twisted log events emitted during the test."""
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


# --------------------------------------------------------------------------- make_self_signed


def test_self_signed_files_and_modes(tmp_path: Path) -> None:
    tls_dir = tmp_path / "data" / "tls"
    old_umask = os.umask(0)  # the key's mode must come from os.open, not from a kind umask
    try:
        make_self_signed("mail.example.org", tls_dir / "cert.pem", tls_dir / "key.pem")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(tls_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((tls_dir / "key.pem").stat().st_mode) == 0o600
    key = serialization.load_pem_private_key((tls_dir / "key.pem").read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert _cert(tls_dir / "cert.pem").public_key() == key.public_key()


def test_self_signed_contents(pair: tuple[Path, Path]) -> None:
    cert = _cert(pair[0])
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "mail.example.org"
    assert cert.issuer == cert.subject
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["mail.example.org", "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1"),
                                                       ipaddress.ip_address("::1")]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment and not usage.key_cert_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    lifetime = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(days=824) < lifetime <= datetime.timedelta(days=825)


@pytest.mark.parametrize(("hostname", "dns", "ips"), [
    ("localhost", ["localhost"], ["127.0.0.1", "::1"]),
    ("192.0.2.7", ["localhost"], ["192.0.2.7", "127.0.0.1", "::1"]),
    ("Bücher.Example.", ["xn--bcher-kva.example", "localhost"], ["127.0.0.1", "::1"]),
])
def test_self_signed_san_variants(tmp_path: Path, hostname: str, dns: list[str],
                                  ips: list[str]) -> None:
    make_self_signed(hostname, tmp_path / "c.pem", tmp_path / "k.pem", days=10)
    san = _cert(tmp_path / "c.pem").extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == dns
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address(i) for i in ips]


@pytest.mark.parametrize("existing", ["cert", "key"])
def test_self_signed_refuses_to_overwrite(tmp_path: Path, existing: str) -> None:
    paths = {"cert": tmp_path / "cert.pem", "key": tmp_path / "key.pem"}
    paths[existing].write_text("precious\n")
    with pytest.raises(FileExistsError):
        make_self_signed("mail.example.org", paths["cert"], paths["key"])
    assert paths[existing].read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [paths[existing].name]


def test_self_signed_refuses_dangling_symlink(tmp_path: Path) -> None:
    (tmp_path / "key.pem").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FileExistsError):
        make_self_signed("mail.example.org", tmp_path / "cert.pem", tmp_path / "key.pem")
    assert not (tmp_path / "elsewhere").exists()


# --------------------------------------------------------------------------- load_tls errors


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


ErrorCase = Callable[[Path, tuple[Path, Path], rsa.RSAPrivateKey], tuple[Path, Path, Path]]

ERROR_CASES: dict[str, tuple[ErrorCase, str]] = {
    "missing cert": (lambda d, p, k: (d / "nope.pem", p[1], d / "nope.pem"), "not found"),
    "missing key": (lambda d, p, k: (p[0], d / "nope.pem", d / "nope.pem"), "not found"),
    "cert is a directory": (lambda d, p, k: (d, p[1], d), "cannot read"),
    "garbage cert": (lambda d, p, k: (_write(d / "c", b"hello\x00\n"), p[1], d / "c"), "not PEM"),
    "garbage key": (lambda d, p, k: (p[0], _write(d / "k", b"hello\n"), d / "k"), "not PEM"),
    "DER cert": (lambda d, p, k: (_write(d / "c", _cert(p[0]).public_bytes(
        serialization.Encoding.DER)), p[1], d / "c"), "not PEM"),
    "key where the cert goes": (lambda d, p, k: (p[1], p[1], p[1]), "no valid PEM certificate"),
    "cert where the key goes": (lambda d, p, k: (p[0], p[0], p[0]), "no valid PEM private key"),
    "encrypted key": (lambda d, p, k: (p[0], _write(d / "k", k.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"))), d / "k"), "encrypted"),
    "mismatched key": (lambda d, p, k: (p[0], _write(d / "k", k.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())), d / "k"), "does not match"),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_load_errors_are_one_line_naming_the_file(
        case: str, tmp_path: Path, pair: tuple[Path, Path], other_key: rsa.RSAPrivateKey) -> None:
    build, expected = ERROR_CASES[case]
    cert, key, culprit = build(tmp_path, pair, other_key)
    with pytest.raises(TLSConfigError) as info:
        load_tls(cert, key)
    message = str(info.value)
    assert "\n" not in message
    assert str(culprit) in message
    assert expected in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads mode-000 files anyway")
def test_load_unreadable_key(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    key = _write(tmp_path / "k.pem", pair[1].read_bytes())
    key.chmod(0)
    with pytest.raises(TLSConfigError, match="permission denied") as info:
        load_tls(pair[0], key)
    assert str(key) in str(info.value)


# --------------------------------------------------------------------------- TLSContext


def test_context_provides_twisted_interfaces(pair: tuple[Path, Path]) -> None:
    ctx = load_tls(*pair)
    assert IOpenSSLServerConnectionCreator.providedBy(ctx)
    assert IOpenSSLContextFactory.providedBy(ctx)
    assert ctx.server_context_factory() is ctx
    connection = ctx.serverConnectionForTLS(None)
    assert isinstance(connection, SSL.Connection)
    assert connection.get_context() is ctx.getContext()


def test_describe_and_expiry(pair: tuple[Path, Path]) -> None:
    ctx = load_tls(*pair)
    cert = _cert(pair[0])
    assert ctx.expires_at == cert.not_valid_after_utc
    assert ctx.expires_at.tzinfo is not None
    info = ctx.describe()
    assert info["subject"] == "CN=mail.example.org"
    assert info["san"] == ["DNS:mail.example.org", "DNS:localhost", "IP:127.0.0.1", "IP:::1"]
    assert info["not_after"] == cert.not_valid_after_utc.isoformat()
    assert info["serial"] == format(cert.serial_number, "x")
    assert info["self_signed"] is True
    assert info["chain_length"] == 1
    assert info["key_type"] == "RSA 2048"
    assert info["certificate"] == str(pair[0])


def test_fullchain_file_is_kept_whole(tmp_path: Path, chain: Chain) -> None:
    cert = _write(tmp_path / "fullchain.pem", chain.leaf.cert_pem + chain.intermediate.cert_pem)
    key = _write(tmp_path / "privkey.pem", chain.leaf.key_pem)
    ctx = load_tls(cert, key)
    assert ctx.chain == (chain.leaf.cert, chain.intermediate.cert)
    assert ctx.describe()["chain_length"] == 2
    assert ctx.describe()["self_signed"] is False


def test_reload_swaps_or_keeps(tmp_path: Path, log_events: list[dict[str, Any]]) -> None:
    live, fresh = tmp_path / "live", tmp_path / "fresh"
    make_self_signed("a.example", live / "cert.pem", live / "key.pem")
    ctx = TLSContext(live / "cert.pem", live / "key.pem")
    first = ctx.certificate.serial_number
    old_context = ctx.getContext()

    make_self_signed("b.example", fresh / "cert.pem", fresh / "key.pem")
    os.replace(fresh / "cert.pem", live / "cert.pem")
    os.replace(fresh / "key.pem", live / "key.pem")
    assert ctx.reload() is True
    second = ctx.certificate.serial_number
    assert second != first
    assert ctx.getContext() is not old_context
    assert ctx.describe()["subject"] == "CN=b.example"

    (live / "cert.pem").write_bytes(b"truncated by a bad renewal")
    assert ctx.reload() is False
    assert ctx.certificate.serial_number == second
    errors = [e for e in log_events if e["log_level"] is LogLevel.error]
    assert len(errors) == 1
    assert str(live / "cert.pem") in errors[0]["error"]


# --------------------------------------------------------------------------- SIGHUP plumbing


class ThreadCallRecorder:
    """Stands in for the reactor's callFromThread queue so the test decides when it drains."""

    def __init__(self) -> None:
        self.queued: list[Callable[[], object]] = []

    def callFromThread(self, f: Callable[..., object], *args: object) -> None:
        self.queued.append(lambda: f(*args))


def test_sighup_defers_to_reactor_and_survives_failures(
        log_events: list[dict[str, Any]]) -> None:
    reactor = ThreadCallRecorder()
    ran: list[str] = []

    def boom() -> None:
        raise RuntimeError("boom")

    callbacks: list[Callable[[], object]] = [boom, lambda: fail(ValueError("async boom"))]
    uninstall = install_sighup_reload(reactor, callbacks)
    try:
        callbacks.append(lambda: ran.append("late"))  # read at signal time, not install time
        signal.raise_signal(signal.SIGHUP)
        assert ran == [] and len(reactor.queued) == 1  # the handler only queued work
        reactor.queued.pop()()
    finally:
        uninstall()
    assert ran == ["late"]
    failures = [e for e in log_events if "log_failure" in e]
    assert sorted(str(e["log_failure"].value) for e in failures) == ["async boom", "boom"]


def test_sighup_uninstall_restores_previous_handler() -> None:
    def previous(signum: int, frame: object) -> None:
        pass

    original = signal.signal(signal.SIGHUP, previous)
    try:
        uninstall = install_sighup_reload(ThreadCallRecorder(), [])
        assert signal.getsignal(signal.SIGHUP) is not previous
        uninstall()
        assert signal.getsignal(signal.SIGHUP) is previous
        uninstall()  # idempotent
        assert signal.getsignal(signal.SIGHUP) is previous
    finally:
        signal.signal(signal.SIGHUP, original)
