"""Deliver one message to the recipients of one domain: route, connect, (TLS), transact.

Routing (RFC 5321 §5.1): MX records by preference (equal ones shuffled); no MX → the domain's
own A/AAAA (the implicit MX); a single MX of "." is a null MX (RFC 7505 §3) → permanent failure
``556 5.1.10``; NXDOMAIN → ``550 5.1.2``; a DNS failure → try later. ``[outbound] smarthost``
replaces all of it with one relay host and AUTH PLAIN (RFC 4954).
TLS: STARTTLS (RFC 3207) whenever offered, unverified (opportunistic, RFC 7435) unless the
domain's MTA-STS policy is ``enforce`` (RFC 8461 §4-5): then only matching MX hosts are used and
their certificate must verify for the MX name, else the attempt fails temporarily. A message
sent with REQUIRETLS (RFC 8689) needs that on every MX, plus REQUIRETLS advertised by it, and
bounces (``550 5.7.10``) when no MX offers it.
Outcomes are per recipient (RFC 5321 §3.3): 2xx sent, 5xx failed (bounced at once), 4xx and
connection problems retried later.
Sessions are reused: after a 2xx end-of-data reply the connection is parked
(``sessions.SessionCache``) and the next message to the same domain (or smarthost) goes over it
with no new connection, greeting, EHLO, STARTTLS or AUTH; parked plus busy sessions stay within
``[outbound] max_per_domain``.
"""

from __future__ import annotations

import base64
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.logger import Logger

from tau.mail.outbound.client import ClientProtocol, Reply, connect
from tau.mail.outbound.dns import DNSTempError, NoSuchDomain
from tau.mail.outbound.sessions import Parked, SessionCache
from tau.mail.smtp.dsn_params import DsnRequest, dsn_args

log = Logger()
Source = Callable[[], AsyncIterator[bytes]]


@dataclass
class Outcome:
    rcpt: str
    status: str          # "sent" | "failed" | "retry"
    code: int
    text: str
    remote: str = ""     # the MX that answered (DSN Remote-MTA, RFC 3464 §2.3.5)
    dsn_passed: bool = False   # the MX took RFC 3461 parameters: success reports are its job now
    relay_ip: str = ""   # its address and the session's TLS version, for the delivery log line
    tls: str = ""


class Temporary(Exception):
    """This host (or every host) cannot take the message now."""


class TLSRequired(Temporary):
    """REQUIRETLS (RFC 8689 §4.2.1): this host offers no verified TLS or no REQUIRETLS."""


@dataclass
class Extra:
    """What the sender asked of the delivery beyond MAIL/RCPT: RFC 3461 DSN parameters to pass on
    to a DSN-capable hop, RFC 8689 REQUIRETLS."""

    dsn: DsnRequest | None = None
    require_tls: bool = False


class _Stale(Exception):
    """A parked session was closed by the server before this transaction got anywhere."""


class Permanent(Exception):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code, self.text = code, text


@dataclass
class Settings:
    helo: str
    port: int = 25
    connect_timeout: float = 30
    command_timeout: float = 300
    smarthost: str = ""
    smarthost_user: str = ""
    smarthost_password: str = ""
    smarthost_tls: str = "verify"
    tls_ca_file: str = ""
    max_per_domain: int = 10

    @classmethod
    def from_config(cls, config: Any) -> "Settings":
        out = config.outbound
        return cls(helo=out.helo or config.tau.hostname, port=out.port,
                   connect_timeout=out.connect_timeout, command_timeout=out.command_timeout,
                   smarthost=out.smarthost, smarthost_user=out.smarthost_user,
                   smarthost_password=out.smarthost_password, smarthost_tls=out.smarthost_tls,
                   tls_ca_file=out.tls_ca_file, max_per_domain=out.max_per_domain)


class Transfer:
    def __init__(self, reactor: Any, dns: Any, mtasts: Any, settings: Settings) -> None:
        self.reactor = reactor
        self.dns = dns
        self.mtasts = mtasts
        self.settings = settings
        self._trust: Any = None
        self.sessions = SessionCache(reactor)

    def close(self) -> None:
        """Say QUIT on every parked session (the service is stopping)."""
        self.sessions.close_all()

    # -- routing ------------------------------------------------------------------------------

    async def routes(self, domain: str) -> tuple[list[str], bool]:
        """(hosts in the order to try, verified TLS required)."""
        if self.settings.smarthost:
            return [self.settings.smarthost], self.settings.smarthost_tls == "verify"
        try:
            records = await self.dns.mx(domain)
        except NoSuchDomain:
            raise Permanent(550, f"5.1.2 Domain {domain} does not exist")
        except DNSTempError as exc:
            raise Temporary(f"DNS lookup of {domain} MX failed: {exc}")
        if len(records) == 1 and records[0][1] in ("", "."):
            raise Permanent(556, f"5.1.10 Domain {domain} does not accept mail (null MX)")
        hosts = _by_preference(records) if records else [domain]
        policy = await self.mtasts.policy(domain) if self.mtasts is not None else None
        if policy is not None and policy.enforce:
            allowed = [h for h in hosts if policy.allows(h)]
            if not allowed:
                raise Temporary(f"no MX of {domain} matches its MTA-STS policy")
            return allowed, True
        return hosts, False

    # -- delivery -----------------------------------------------------------------------------

    async def deliver(self, domain: str, mail_from: str, rcpts: list[str], size: int, eight_bit: bool,
                      source: Source, extra: Extra | None = None) -> list[Outcome]:
        require_tls = extra is not None and extra.require_tls
        try:
            hosts, verify = await self.routes(domain)
            verify = verify or require_tls
        except Permanent as exc:
            return [Outcome(r, "failed", exc.code, exc.text) for r in rcpts]
        except Temporary as exc:
            return [Outcome(r, "retry", 451, f"4.4.3 {exc}") for r in rcpts]
        key = "[smarthost]" if self.settings.smarthost else domain
        last = "4.4.1 No answer from any MX"
        parked = None if require_tls else self.sessions.take(key, hosts, verify)
        tls_refused = False
        if parked is not None:
            try:
                return await self._reuse(key, parked, mail_from, rcpts, size, eight_bit, source, extra)
            except _Stale:
                pass                                   # the server hung up meanwhile: connect afresh
            except Temporary as exc:
                last = f"4.4.1 {parked.host}: {exc}"
        for host in hosts:
            target, port = _host_port(host, self.settings.port)
            try:
                addresses = [target] if _is_ip(target) else await self.dns.addresses(target)
            except DNSTempError as exc:
                last = f"4.4.3 {exc}"
                continue
            for addr in addresses[:4]:
                try:
                    return await self._session(key, host, target, addr, port, verify, mail_from, rcpts, size,
                                               eight_bit, source, extra)
                except Temporary as exc:
                    last = f"4.4.1 {target}[{addr}]: {exc}"
                    tls_refused = tls_refused or isinstance(exc, TLSRequired)
                    log.info("outbound {domain}: {why}", domain=domain, why=last)
        if tls_refused:       # RFC 8689 §4.2.1: no hop could take it as required: a bounce, not a retry
            return [Outcome(r, "failed", 550, f"5.7.10 REQUIRETLS: {last[6:]}") for r in rcpts]
        return [Outcome(r, "retry", 451, last) for r in rcpts]

    def _tls_context(self, host: str, verify: bool) -> Any:
        from twisted.internet import ssl

        if not verify:
            return ssl.CertificateOptions(verify=False)
        if self._trust is None:
            ca = self.settings.tls_ca_file
            self._trust = ssl.Certificate.loadPEM(Path(ca).read_bytes()) if ca else ssl.platformTrust()
        return ssl.optionsForClientTLS(host, trustRoot=self._trust)

    async def _session(self, key: str, route: str, host: str, addr: str, port: int, verify: bool, mail_from: str,
                       rcpts: list[str], size: int, eight_bit: bool, source: Source,
                       extra: Extra | None = None) -> list[Outcome]:
        s = self.settings
        self.sessions.busy(key, +1)
        self.sessions.make_room(key, s.max_per_domain)
        keep = False
        try:
            try:
                proto = await connect(self.reactor, addr, port, s.connect_timeout, s.command_timeout)
            except Exception as exc:
                raise Temporary(f"connect failed: {type(exc).__name__}")
            entry = Parked(proto, route, verify, self.reactor.seconds())
            try:
                await self._open(proto, host, verify, extra is not None and extra.require_tls)
                outcomes, keep = await self._transaction(proto, host, mail_from, rcpts, size, eight_bit, source,
                                                         extra=extra)
                return outcomes
            except (Temporary, Permanent):
                raise
            except Exception as exc:
                raise Temporary(f"connection lost: {type(exc).__name__}: {exc}")
            finally:
                if keep:
                    self.sessions.park(key, entry)
                else:
                    await proto.quit()
        finally:
            if not keep:
                self.sessions.busy(key, -1)

    async def _reuse(self, key: str, entry: Parked, mail_from: str, rcpts: list[str], size: int, eight_bit: bool,
                     source: Source, extra: Extra | None = None) -> list[Outcome]:
        """One more transaction on a parked session; :class:`_Stale` if it turned out to be closed
        before the server accepted anything (the caller then connects afresh)."""
        keep = False
        try:
            host = _host_port(entry.host, self.settings.port)[0]
            outcomes, keep = await self._transaction(entry.proto, host, mail_from, rcpts, size, eight_bit, source,
                                                     reused=True, extra=extra)
            return outcomes
        except (_Stale, Temporary):
            raise
        except Exception as exc:
            raise Temporary(f"connection lost: {type(exc).__name__}: {exc}")
        finally:
            if keep:
                self.sessions.park(key, entry)
            else:
                self.sessions.busy(key, -1)
                await entry.proto.quit()

    async def _open(self, proto: ClientProtocol, host: str, verify: bool, require_tls: bool = False) -> None:
        """Greeting, EHLO, STARTTLS (+ EHLO again), AUTH: a session ready for MAIL FROM.

        REQUIRETLS (RFC 8689 §4.2.1): STARTTLS with a certificate that verifies for the MX name,
        and REQUIRETLS advertised after it, else :class:`TLSRequired`. The MX names themselves
        are as trustworthy as their source: an MTA-STS policy in enforce mode, else plain DNS
        (tau does not validate DNSSEC), which is weaker than the RFC asks."""
        s = self.settings
        greeting = await proto.read_reply(min(s.command_timeout, 300))
        if greeting.code != 220:
            raise Temporary(f"greeting {greeting}")
        await proto.ehlo(s.helo)
        if require_tls:
            await self._require_tls(proto, host)
            return
        tls_required = verify or (s.smarthost and s.smarthost_tls != "none")
        if "STARTTLS" in proto.extensions:
            reply = await proto.starttls(self._tls_context(host, verify))
            if reply.code == 220:
                await proto.ehlo(s.helo)
            elif tls_required:
                raise Temporary(f"STARTTLS refused: {reply}")
        elif tls_required:
            raise Temporary("STARTTLS not offered but required")
        if s.smarthost and s.smarthost_user:
            await self._smarthost_auth(proto)

    async def _smarthost_auth(self, proto: ClientProtocol) -> None:
        s = self.settings
        token = base64.b64encode(f"\0{s.smarthost_user}\0{s.smarthost_password}".encode()).decode()
        reply = await proto.command(f"AUTH PLAIN {token}")
        if reply.code != 235:
            raise Temporary(f"smarthost AUTH failed: {reply}")

    async def _require_tls(self, proto: ClientProtocol, host: str) -> None:
        s = self.settings
        if "STARTTLS" not in proto.extensions:
            raise TLSRequired("STARTTLS not offered")
        reply = await proto.starttls(self._tls_context(host, True))
        if reply.code != 220:
            raise TLSRequired(f"STARTTLS refused: {reply}")
        try:
            await proto.ehlo(s.helo)              # the handshake, and the certificate check, happen here
        except Exception as exc:
            raise TLSRequired(f"TLS failed or the certificate does not verify for {host}: {type(exc).__name__}")
        if "REQUIRETLS" not in proto.extensions:
            raise TLSRequired("REQUIRETLS not offered")
        if s.smarthost and s.smarthost_user:
            await self._smarthost_auth(proto)

    async def _transaction(self, proto: ClientProtocol, host: str, mail_from: str, rcpts: list[str], size: int,
                           eight_bit: bool, source: Source, reused: bool = False,
                           extra: Extra | None = None) -> tuple[list[Outcome], bool]:
        """MAIL, RCPT..., DATA and the message: (outcome per recipient, the session may be reused).

        Lines are sent as stored, however long: RFC 5322 §2.1.1 asks senders to keep them within
        998 octets, but wrapping them (Postfix's ``smtp_line_length_limit``, CRLF SP) would change
        the body after our DKIM signature and the sender's, so a relayed newsletter would fail
        DMARC; receivers (Postfix, Gmail) take long lines. The RFC 3461 parameters go on to an MX
        that advertises DSN (``passes_dsn``)."""
        s = self.settings
        params = f" SIZE={size}" if "SIZE" in proto.extensions else ""
        if eight_bit and "8BITMIME" in proto.extensions:
            params += " BODY=8BITMIME"
        dsn = extra.dsn if extra is not None else None
        passes_dsn = dsn is not None and "DSN" in proto.extensions
        mail_dsn, rcpt_dsn = (dsn_args(dsn, rcpts) if passes_dsn and dsn is not None else ("", {}))
        if extra is not None and extra.require_tls:
            mail_dsn += " REQUIRETLS"
        lines = ([f"MAIL FROM:<{mail_from}>{params}{mail_dsn}"] + [f"RCPT TO:<{r}>{rcpt_dsn.get(r, '')}" for r in rcpts]
                 + ["DATA"])
        replies: list[Reply] = []
        if "PIPELINING" in proto.extensions:          # RFC 2920 §3.1: one write, then the replies
            for line in lines:
                proto.send_line(line)
            for _ in lines:
                replies.append(await self._reply(proto, reused and not replies))
        else:
            for line in lines:
                proto.send_line(line)
                replies.append(await self._reply(proto, reused and not replies))
                if line.startswith("MAIL") and not replies[-1].ok:
                    break
                if line.startswith("RCPT") and line == lines[-2] and not any(r.ok for r in replies[1:]):
                    break
        mail_reply = replies[0]
        remote = host
        session = (proto.peer_ip(), proto.tls_version())
        if not mail_reply.ok:
            return [_outcome(r, mail_reply, remote, session) for r in rcpts], False
        rcpt_replies = replies[1:1 + len(rcpts)]
        accepted = [r for r, rep in zip(rcpts, rcpt_replies, strict=False) if rep.ok]
        outcomes = {r: _outcome(r, rep, remote, session) for r, rep in zip(rcpts, rcpt_replies, strict=False)
                    if not rep.ok}
        if not accepted:
            return [outcomes[r] for r in rcpts], False
        data_reply = replies[1 + len(rcpts)] if len(replies) > 1 + len(rcpts) else None
        if data_reply is None or data_reply.code != 354:
            final = data_reply or Reply(451, ["4.3.0 DATA not accepted"])
        else:
            final = await proto.send_data(source(), max(s.command_timeout, 600))
        for r in accepted:
            outcomes[r] = _outcome(r, final, remote, session)
            outcomes[r].dsn_passed = passes_dsn
        # after a 2xx end-of-data reply the session is between transactions (RFC 5321 §4.1.1.4)
        return [outcomes[r] for r in rcpts], 200 <= final.code < 300 and proto.alive

    @staticmethod
    async def _reply(proto: ClientProtocol, first_on_reused: bool) -> Reply:
        """The next reply; on a reused session, a lost connection or 421 instead of the first reply
        (to MAIL FROM) means the server closed it while parked: :class:`_Stale`."""
        if not first_on_reused:
            return await proto.read_reply()
        try:
            reply = await proto.read_reply()
        except Exception as exc:
            raise _Stale() from exc
        if reply.code == 421:
            raise _Stale()
        return reply


def _outcome(rcpt: str, reply: Reply, remote: str, session: tuple[str, str] = ("", "")) -> Outcome:
    status = "sent" if 200 <= reply.code < 300 else "failed" if reply.permanent else "retry"
    return Outcome(rcpt, status, reply.code, reply.text[:500], remote, relay_ip=session[0], tls=session[1])


def _by_preference(records: list[tuple[int, str]]) -> list[str]:
    """RFC 5321 §5.1: lowest preference first; equal preferences in random order."""
    groups: dict[int, list[str]] = {}
    for pref, host in records:
        if host and host != ".":
            groups.setdefault(pref, []).append(host)
    out: list[str] = []
    for pref in sorted(groups):
        hosts = groups[pref][:]
        random.shuffle(hosts)
        out += hosts
    return out


def _host_port(host: str, default: int) -> tuple[str, int]:
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        return name, int(rest[1:]) if rest.startswith(":") else default
    if host.count(":") == 1:
        name, _, port = host.partition(":")
        return name, int(port)
    return host, default


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False
