"""Real TLS over loopback: a Twisted server (subprocess, see conftest) and Python's ssl client."""

from __future__ import annotations

import os
import socket
import ssl
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography import x509

from tau.net.tls import TLS12_CIPHERS, make_self_signed

if TYPE_CHECKING:
    from conftest import Chain, ServerProcess

Start = Callable[[Path, Path], "ServerProcess"]


def connect(port: int, cafile: Path | None = None, hostname: str = "localhost",
            configure: Callable[[ssl.SSLContext], None] | None = None) -> ssl.SSLSocket:
    """Handshake with the server; verified against ``cafile`` unless it is None."""
    if cafile is None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx = ssl.create_default_context(cafile=str(cafile))
        ctx.verify_flags |= ssl.VERIFY_X509_STRICT  # what Python 3.13+ does by default
    if configure:
        configure(ctx)
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        return ctx.wrap_socket(sock, server_hostname=hostname)
    except BaseException:
        sock.close()
        raise


def serial(conn: ssl.SSLSocket) -> int:
    der = conn.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def echo(conn: ssl.SSLSocket, payload: bytes = b"ping") -> bytes:
    conn.sendall(payload)
    return conn.recv(100)


def cert_serial(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("live") / "tls"
    make_self_signed("mail.example.org", d / "cert.pem", d / "key.pem")
    return d / "cert.pem", d / "key.pem"


@pytest.fixture(scope="module")
def server(start_module_server: Start, self_signed: tuple[Path, Path]) -> ServerProcess:
    """One server for the tests that only connect; the reload tests start their own."""
    return start_module_server(*self_signed)


# --------------------------------------------------------------------------- handshakes


@pytest.mark.parametrize("hostname", ["mail.example.org", "localhost", "127.0.0.1"])
def test_self_signed_verifies_as_its_own_ca(server: ServerProcess, self_signed: tuple[Path, Path],
                                            hostname: str) -> None:
    with connect(server.tls_port, self_signed[0], hostname) as conn:
        assert serial(conn) == cert_serial(self_signed[0])
        assert echo(conn) == b"ping"


def test_wrong_hostname_is_rejected(server: ServerProcess, self_signed: tuple[Path, Path]) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch|doesn't match"):
        connect(server.tls_port, self_signed[0], "other.example.org")


def test_tls13_works(server: ServerProcess) -> None:
    def only_13(ctx: ssl.SSLContext) -> None:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3

    with connect(server.tls_port, configure=only_13) as conn:
        assert conn.version() == "TLSv1.3"
        assert echo(conn) == b"ping"


def test_tls12_gets_ecdhe_aead_without_compression(server: ServerProcess) -> None:
    def only_12(ctx: ssl.SSLContext) -> None:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2

    with connect(server.tls_port, configure=only_12) as conn:
        assert conn.version() == "TLSv1.2"
        cipher = conn.cipher()
        assert cipher is not None
        assert cipher[0] in TLS12_CIPHERS.split(":")
        assert cipher[0].startswith("ECDHE-RSA-")
        assert conn.compression() is None


def test_tls12_server_picks_the_cipher(server: ServerProcess) -> None:
    """The client lists CHACHA20 first; with server preference AES128-GCM (ours first) wins."""
    def prefer_chacha(ctx: ssl.SSLContext) -> None:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES256-GCM-SHA384:"
                        "ECDHE-RSA-AES128-GCM-SHA256")

    with connect(server.tls_port, configure=prefer_chacha) as conn:
        cipher = conn.cipher()
        assert cipher is not None and cipher[0] == "ECDHE-RSA-AES128-GCM-SHA256"


def test_tls12_without_forward_secrecy_is_refused(server: ServerProcess) -> None:
    def static_rsa(ctx: ssl.SSLContext) -> None:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA:AES256-SHA")

    with pytest.raises(ssl.SSLError, match="HANDSHAKE_FAILURE|NO_SHARED_CIPHER"):
        connect(server.tls_port, configure=static_rsa)


@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
def test_tls11_and_below_are_refused(server: ServerProcess, version: str) -> None:
    def legacy(ctx: ssl.SSLContext) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # so the client really sends an old hello
            ctx.minimum_version = getattr(ssl.TLSVersion, version)
            ctx.maximum_version = getattr(ssl.TLSVersion, version)

    with pytest.raises(ssl.SSLError, match="PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL"):
        connect(server.tls_port, configure=legacy)
    with connect(server.tls_port) as conn:  # and the server is fine afterwards
        assert echo(conn) == b"ping"


def test_starttls_upgrade(server: ServerProcess, self_signed: tuple[Path, Path]) -> None:
    """``transport.startTLS(ctx.server_context_factory())``, as SMTP and IMAP will use it."""
    client = ssl.create_default_context(cafile=str(self_signed[0]))
    with socket.create_connection(("127.0.0.1", server.starttls_port), timeout=5) as sock:
        sock.sendall(b"hello\r\n")
        assert sock.recv(100) == b"hello\r\n"
        sock.sendall(b"STARTTLS\r\n")
        assert sock.recv(100) == b"GO\r\n"
        with client.wrap_socket(sock, server_hostname="mail.example.org") as conn:
            assert serial(conn) == cert_serial(self_signed[0])
            assert echo(conn, b"secret\r\n") == b"secret\r\n"


# --------------------------------------------------------------------------- SIGHUP reload


def test_sighup_swaps_cert_for_new_connections_only(start_server: Start, tmp_path: Path) -> None:
    live, fresh = tmp_path / "live", tmp_path / "fresh"
    make_self_signed("mail.example.org", live / "cert.pem", live / "key.pem")
    old_ca = tmp_path / "old-ca.pem"
    old_ca.write_bytes((live / "cert.pem").read_bytes())
    server = start_server(live / "cert.pem", live / "key.pem")

    with connect(server.tls_port, old_ca) as before:
        assert echo(before, b"one") == b"one"

        make_self_signed("mail.example.org", fresh / "cert.pem", fresh / "key.pem")
        new_ca = tmp_path / "new-ca.pem"
        new_ca.write_bytes((fresh / "cert.pem").read_bytes())
        os.replace(fresh / "key.pem", live / "key.pem")  # renewal tools rename into place
        os.replace(fresh / "cert.pem", live / "cert.pem")
        assert server.sighup() is True

        with connect(server.tls_port, new_ca) as after:
            assert serial(after) == cert_serial(new_ca)
            assert echo(after, b"two") == b"two"
        with pytest.raises(ssl.SSLCertVerificationError):
            connect(server.tls_port, old_ca)  # the old certificate is no longer served

        # the connection opened before the reload still works, on the old certificate
        assert serial(before) == cert_serial(old_ca)
        assert echo(before, b"three") == b"three"

    # a broken renewal: garbage certificate -> keep serving the last good one
    (live / "cert.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\ntruncated\n")
    assert server.sighup() is False
    with connect(server.tls_port, new_ca) as conn:
        assert serial(conn) == cert_serial(new_ca)

    # a half-done renewal: new certificate, old key -> mismatch, keep the last good one
    make_self_signed("mail.example.org", fresh / "cert.pem", fresh / "key.pem")
    os.replace(fresh / "cert.pem", live / "cert.pem")
    assert server.sighup() is False
    with connect(server.tls_port, new_ca) as conn:
        assert serial(conn) == cert_serial(new_ca)

    log = server.log()
    assert "deliberately failing reload callback" in log  # logged, and reload still ran
    assert log.count("TLS reload failed") == 2
    assert "does not match" in log


def test_fullchain_is_served_whole(start_server: Start, tmp_path: Path, chain: Chain) -> None:
    """A client trusting only the root verifies only if the intermediate comes along."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    root = tmp_path / "root.pem"
    root.write_bytes(chain.root.cert_pem)
    cert.write_bytes(chain.leaf.cert_pem)  # leaf alone first: the control
    key.write_bytes(chain.leaf.key_pem)
    server = start_server(cert, key)
    with pytest.raises(ssl.SSLCertVerificationError):
        connect(server.tls_port, root)

    cert.write_bytes(chain.leaf.cert_pem + chain.intermediate.cert_pem)
    assert server.sighup() is True
    with connect(server.tls_port, root) as conn:
        assert serial(conn) == chain.leaf.cert.serial_number
        assert echo(conn) == b"ping"
