"""A remote mail world on loopback for tests: an authoritative DNS server with test zone data, an
SMTP sink standing in for the remote MX (RFC 5321), and an HTTPS server for MTA-STS policies.

Run as ``python -m tests.support.outbound SPEC.json`` (its own process and reactor, so the test
process stays synchronous); :class:`RemotePeer` starts and reads it. The sink writes every accepted
message to ``out/NNNNNN-xxxx.eml`` plus a ``.json`` envelope, only after it answered 250.
Behaviour by recipient local part: ``reject*`` → 550 at RCPT (text: ``out/diagnostic`` if any);
``tempfail*`` → 451 at end of data for the first two attempts of each Message-ID; a file
``out/stall`` makes the sink hold its reply to
the end of data (a delivery "in flight") until the connection drops — every message's, or, when
the file holds a number N, those after the first N accepted by this sink process.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.sink import Sink, sink_protocol

ROOT = Path(__file__).resolve().parents[2]  # the checkout: ``tests.support`` imports from here
ZONE_SOA = "test"


def build_authority(zone: dict[str, list[list[Any]]]) -> Any:
    from twisted.names import authority, dns

    class MemoryAuthority(authority.FileAuthority):
        def loadFile(self, filename: Any) -> None:
            self.soa = (ZONE_SOA.encode(), dns.Record_SOA(mname=b"ns.test", rname=b"root.test", serial=1,
                                                          minimum=1, expire=1, ttl=1))
            self.records = {}
            for name, records in zone.items():
                out = self.records.setdefault(name.lower().rstrip(".").encode(), [])
                for rec in records:
                    kind, *args = rec
                    if kind == "MX":
                        out.append(dns.Record_MX(int(args[0]), args[1].encode(), ttl=1))
                    elif kind == "A":
                        out.append(dns.Record_A(args[0], ttl=1))
                    elif kind == "AAAA":
                        out.append(dns.Record_AAAA(args[0], ttl=1))
                    elif kind == "TXT":
                        text = args[0].encode()
                        out.append(dns.Record_TXT(*[text[i:i + 255] for i in range(0, len(text), 255)], ttl=1))
                    elif kind == "CNAME":
                        out.append(dns.Record_CNAME(args[0].encode(), ttl=1))
                    elif kind == "SRV":  # ["SRV", priority, weight, port, target]
                        out.append(dns.Record_SRV(int(args[0]), int(args[1]), int(args[2]), args[3].encode(),
                                                  ttl=1))

    return MemoryAuthority(None)


def serve(spec: dict[str, Any]) -> None:
    from twisted.internet import reactor, ssl
    from twisted.internet.protocol import ServerFactory
    from twisted.names import dns, server

    zone = build_authority(spec.get("zone", {}))

    class Factory(server.DNSServerFactory):
        def gotResolverError(self, failure: Any, protocol: Any, message: Any, address: Any) -> None:
            """NXDOMAIN with the zone's SOA in the authority section, as real authoritative
            servers send it (RFC 2308 §2.1; Twisted leaves it out), so resolvers may cache it."""
            if not failure.check(dns.AuthoritativeDomainError):
                return super().gotResolverError(failure, protocol, message, address)
            soa = dns.RRHeader(zone.soa[0], dns.SOA, dns.IN, zone.soa[1].ttl, zone.soa[1], auth=True)
            response = self._responseFromMessage(message=message, rCode=dns.ENAME, authority=[soa])
            self.sendReply(protocol, response, address)

    factory = Factory(authorities=[zone])
    reactor.listenUDP(spec["dns_port"], dns.DNSDatagramProtocol(factory), interface="127.0.0.1")
    reactor.listenTCP(spec["dns_port"], factory, interface="127.0.0.1")
    sink = Sink(spec)
    sink.stats()
    smtp = ServerFactory.forProtocol(sink_protocol(sink))
    reactor.listenTCP(spec["smtp_port"], smtp, interface="127.0.0.1")
    for address in {*spec.get("dsn_addresses", ()), *spec.get("requiretls_addresses", ())}:   # the same sink
        reactor.listenTCP(spec["smtp_port"], smtp, interface=address)
    if spec.get("https_port"):
        from twisted.web import resource, static
        from twisted.web.server import Site

        root = resource.Resource()
        well_known = resource.Resource()
        root.putChild(b".well-known", well_known)
        well_known.putChild(b"mta-sts.txt", static.Data(spec["mta_sts_policy"].encode(), "text/plain"))
        pem = Path(spec["tls_cert"]).read_text() + Path(spec["tls_key"]).read_text()
        reactor.listenSSL(spec["https_port"], Site(root), ssl.PrivateCertificate.loadPEM(pem).options(),
                          interface="127.0.0.1")
    (Path(spec["out"]) / "ready").write_text("ok")
    reactor.run()


def free_port() -> int:
    from tests.support.daemon import free_port as listening_port

    return listening_port()


class RemotePeer:
    """Start the remote world in a subprocess; read what the sink accepted."""

    def __init__(self, folder: Path, zone: dict[str, list[list[Any]]], **options: Any) -> None:
        self.folder = folder
        self.out = folder / "sink"
        self.out.mkdir(parents=True, exist_ok=True)
        self.dns_port, self.smtp_port = free_port(), free_port()
        self.spec = {"dns_port": self.dns_port, "smtp_port": self.smtp_port, "out": str(self.out),
                     "zone": zone, **options}
        if options.get("mta_sts_policy"):
            self.spec["https_port"] = self.https_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "RemotePeer":
        spec_file = self.folder / "peer.json"
        spec_file.write_text(json.dumps(self.spec))
        self.log = open(self.folder / "peer.log", "wb")  # noqa: SIM115 - lives as long as the peer
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.support.outbound", str(spec_file)],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 20
        while not (self.out / "ready").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("test peer did not start: " + (self.folder / "peer.log").read_text()[-2000:])
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.log.close()

    def messages(self) -> list[tuple[dict[str, Any], bytes]]:
        out = []
        for eml in sorted(self.out.glob("*.eml")):
            out.append((json.loads(eml.with_suffix(".json").read_text()), eml.read_bytes()))
        return out

    def stats(self) -> dict[str, int]:
        return json.loads((self.out / "stats.json").read_text())

    def wait_for(self, count: int, timeout: float = 30.0) -> list[tuple[dict[str, Any], bytes]]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages()
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def dns_resolve_txt(self, name: str) -> list[bytes]:
        """What a verifier sees: TXT of ``name`` asked of the test DNS server (dnspython)."""
        import dns.message
        import dns.query
        import dns.rdatatype

        answer = dns.query.udp(dns.message.make_query(name, dns.rdatatype.TXT), "127.0.0.1", timeout=5,
                               port=self.dns_port)
        return [b"".join(r.strings) for rrset in answer.answer for r in rrset]


if __name__ == "__main__":
    serve(json.loads(Path(sys.argv[1]).read_text()))


def make_tls(folder: Path, names: list[str]) -> tuple[Path, Path, Path]:
    """A test CA and a certificate for ``names`` signed by it: (ca.pem, cert.pem, key.pem)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tau test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = (folder / "ca.pem", folder / "peer-cert.pem", folder / "peer-key.pem")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def start_rspamd(folder: Path, timeout: float = 40.0) -> tuple[subprocess.Popen[bytes] | None, str, str]:
    """Debian's rspamd on loopback ports with its stock rules and a local.d of our own:
    (process or None, base URL of the normal worker, why it could not start)."""
    import shutil

    binary = shutil.which("rspamd")
    if binary is None or not Path("/etc/rspamd/rspamd.conf").exists():
        return None, "", "rspamd is not installed (apt-get install rspamd)"
    local = folder / "local"
    (local / "local.d").mkdir(parents=True, exist_ok=True)
    ports = {name: free_port() for name in ("normal", "controller", "proxy")}
    for name, port in ports.items():
        (local / "local.d" / f"worker-{name}.inc").write_text(f'bind_socket = "127.0.0.1:{port}";\ncount = 1;\n')
    (local / "local.d" / "logging.inc").write_text('type = "console";\nlevel = "error";\n')
    for sub in ("db", "run", "log"):
        (folder / sub).mkdir(exist_ok=True)
    argv = [binary, "-f", "-i", "-u", "root", "-g", "root", "-c", "/etc/rspamd/rspamd.conf",
            "--var", f"LOCAL_CONFDIR={local}", "--var", f"DBDIR={folder / 'db'}",
            "--var", f"RUNDIR={folder / 'run'}", "--var", f"LOGDIR={folder / 'log'}"]
    if os.geteuid() != 0:
        argv = [a for a in argv if a not in ("-u", "-g", "root")]
    log = open(folder / "rspamd.log", "wb")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{ports['normal']}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None, "", "rspamd exited: " + (folder / "rspamd.log").read_text()[-500:]
        try:
            with socket.create_connection(("127.0.0.1", ports["normal"]), timeout=0.5):
                return proc, url, ""
        except OSError:
            time.sleep(0.2)
    proc.kill()
    return None, "", "rspamd did not listen in time"
