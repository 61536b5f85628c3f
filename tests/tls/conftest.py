"""Fixtures for tau.net.tls: certificate factories and a real Twisted TLS server in a subprocess.

Run as a script (``python conftest.py CERT KEY``) this file *is* that server: a TLS echo
listener built exactly like ``tau.net.endpoints.wrap_factory`` does it, a STARTTLS echo listener
using ``transport.startTLS``, and SIGHUP wired through ``install_sighup_reload``. A subprocess
keeps the reactor, signals and the pytest process apart; the fixture always kills it.
"""

from __future__ import annotations

import datetime
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 10.0


# --------------------------------------------------------------------------- server process


def _serve(cert: str, key: str) -> None:
    """The subprocess: print ``ports TLS STARTTLS``, echo, print ``reload BOOL`` per SIGHUP."""
    from twisted.internet import reactor
    from twisted.internet.protocol import Factory, Protocol
    from twisted.internet.task import LoopingCall
    from twisted.logger import globalLogBeginner, textFileLogObserver
    from twisted.protocols.basic import LineReceiver
    from twisted.protocols.tls import TLSMemoryBIOFactory

    from tau.net.tls import install_sighup_reload, load_tls

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)], redirectStandardIO=False)
    ctx = load_tls(cert, key)

    class Echo(Protocol):
        def dataReceived(self, data: bytes) -> None:
            self.transport.write(data)

    class StartTLSEcho(LineReceiver):
        """``STARTTLS`` -> ``GO`` then TLS, as SMTP/IMAP will do it; afterwards echo lines."""

        def lineReceived(self, line: bytes) -> None:
            if line == b"STARTTLS":
                self.sendLine(b"GO")
                self.transport.startTLS(ctx.server_context_factory())
            else:
                self.sendLine(line)

    def broken() -> None:
        raise RuntimeError("deliberately failing reload callback")

    def reload() -> None:
        print("reload", ctx.reload(), flush=True)

    tls = reactor.listenTCP(0, TLSMemoryBIOFactory(ctx, False, Factory.forProtocol(Echo)),
                            interface="127.0.0.1")
    starttls = reactor.listenTCP(0, Factory.forProtocol(StartTLSEcho), interface="127.0.0.1")
    install_sighup_reload(reactor, [broken, reload])

    parent = os.getppid()

    def orphaned() -> None:  # pytest got SIGKILLed: do not linger
        if os.getppid() != parent:
            reactor.stop()

    LoopingCall(orphaned).start(0.5)
    print("ports", tls.getHost().port, starttls.getHost().port, flush=True)
    reactor.run()


@dataclass
class ServerProcess:
    """Handle on a running server subprocess."""

    proc: subprocess.Popen[str]
    log_path: Path
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    tls_port: int = 0
    starttls_port: int = 0

    def next_line(self) -> str:
        try:
            line = self.lines.get(timeout=TIMEOUT)
        except queue.Empty:
            line = None
        if line is None:
            raise AssertionError(f"server gave no output; its log:\n{self.log()}")
        return line

    def sighup(self) -> bool:
        """Send SIGHUP and wait until the server reports the reload's result."""
        self.proc.send_signal(signal.SIGHUP)
        line = self.next_line()
        assert line.startswith("reload "), line
        return line == "reload True"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _pump(proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.put(line.strip())
    lines.put(None)


class ServerPool:
    """Starts servers and kills every one of them in :meth:`close` (a fixture finalizer)."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp = tmp_path_factory
        self._started: list[ServerProcess] = []

    def start(self, cert: Path, key: Path) -> ServerProcess:
        log_path = self._tmp.mktemp("server") / "server.log"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
        with log_path.open("w") as log_file:
            proc = subprocess.Popen([sys.executable, "-u", __file__, str(cert), str(key)],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=log_file, text=True, env=env, cwd=ROOT)
        server = ServerProcess(proc, log_path)
        self._started.append(server)
        threading.Thread(target=_pump, args=(proc, server.lines), daemon=True).start()
        first = server.next_line().split()
        assert first[0] == "ports", first
        server.tls_port, server.starttls_port = int(first[1]), int(first[2])
        return server

    def close(self) -> None:
        for server in self._started:
            if server.proc.poll() is None:
                server.proc.kill()
            server.proc.wait(timeout=TIMEOUT)
            if server.proc.stdout is not None:
                server.proc.stdout.close()
        self._started.clear()


@pytest.fixture
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[Path, Path], ServerProcess]]:
    """Factory: ``start_server(cert, key)`` -> a live server, killed when the test ends."""
    pool = ServerPool(tmp_path_factory)
    yield pool.start
    pool.close()


@pytest.fixture(scope="module")
def start_module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[Path, Path], ServerProcess]]:
    """Like ``start_server`` but shared by a module's read-only tests, killed after the module."""
    pool = ServerPool(tmp_path_factory)
    yield pool.start
    pool.close()


# --------------------------------------------------------------------------- certificates


@dataclass(frozen=True)
class Issued:
    """A key and certificate in memory, with helpers to write them as PEM."""

    key: rsa.RSAPrivateKey
    cert: x509.Certificate

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def _issue(cn: str, issuer: Issued | None, ca: bool, sans: tuple[str, ...] = ()) -> Issued:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.cert.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            (issuer.key if issuer else key).public_key()), critical=False)
    )
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_encipherment=False, content_commitment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False)
    return Issued(key, builder.sign((issuer.key if issuer else key), hashes.SHA256()))


@dataclass(frozen=True)
class Chain:
    """root -> intermediate -> leaf (SAN localhost), like a public CA's issuance."""

    root: Issued
    intermediate: Issued
    leaf: Issued


@pytest.fixture(scope="session")
def chain() -> Chain:
    root = _issue("tau test root", None, ca=True)
    intermediate = _issue("tau test intermediate", root, ca=True)
    leaf = _issue("localhost", intermediate, ca=False, sans=("localhost",))
    return Chain(root, intermediate, leaf)


@pytest.fixture(scope="session")
def other_key() -> rsa.RSAPrivateKey:
    """A key that matches no certificate."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


if __name__ == "__main__":
    _serve(sys.argv[1], sys.argv[2])
