"""MTA-STS (RFC 8461): does a domain require verified TLS to its MX hosts?

Discovery (§3.1): a TXT record ``_mta-sts.DOMAIN`` ``v=STSv1; id=...``. The policy (§3.2) is
fetched over verified HTTPS from ``https://mta-sts.DOMAIN/.well-known/mta-sts.txt`` (no
redirects, §3.3) and cached for ``max_age``; a changed ``id`` triggers a refetch. In mode
``enforce`` an MX must match one of the policy's ``mx`` patterns (§4.1) and present a certificate
valid for its name (§4.2), or delivery to it fails temporarily (§5). ``testing`` and ``none`` are
not enforced. ``[outbound] mta_sts_host`` (tests) fetches every policy from that host:port while
still verifying the certificate against ``mta-sts.DOMAIN``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.logger import Logger
from zope.interface import implementer

log = Logger()
MAX_POLICY = 64 * 1024
MAX_AGE_LIMIT = 31557600


@dataclass(frozen=True)
class Policy:
    id: str
    mode: str                 # enforce | testing | none
    mx: tuple[str, ...]
    max_age: int
    expires: float

    @property
    def enforce(self) -> bool:
        return self.mode == "enforce"

    def allows(self, host: str) -> bool:
        """§4.1: exact match, or ``*.example.net`` matching exactly one left-most label."""
        host = host.lower().rstrip(".")
        for pattern in self.mx:
            if pattern.startswith("*."):
                if "." in host and host.split(".", 1)[1] == pattern[2:]:
                    return True
            elif host == pattern:
                return True
        return False


def parse_txt(records: list[str]) -> str | None:
    """The policy id from the ``_mta-sts`` TXT records; None unless exactly one is STSv1 (§3.1)."""
    found = [r for r in records if r.replace(" ", "").startswith("v=STSv1")]
    if len(found) != 1:
        return None
    for part in found[0].split(";"):
        key, _, value = part.strip().partition("=")
        if key == "id" and value.strip().isalnum():
            return value.strip()
    return None


def parse_policy(text: str, policy_id: str, now: float) -> Policy | None:
    """§3.2: ``key: value`` lines; version STSv1, mode, max_age and (unless mode none) mx."""
    fields: dict[str, list[str]] = {}
    for line in text.replace("\r\n", "\n").split("\n"):
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), []).append(value.strip())
    if fields.get("version") != ["STSv1"]:
        return None
    mode = (fields.get("mode") or [""])[0]
    if mode not in ("enforce", "testing", "none"):
        return None
    try:
        max_age = min(int((fields.get("max_age") or [""])[0]), MAX_AGE_LIMIT)
    except ValueError:
        return None
    mx = tuple(m.lower().rstrip(".") for m in fields.get("mx", []))
    if mode != "none" and not mx:
        return None
    return Policy(policy_id, mode, mx, max_age, now + max_age)


def _https_policy(reactor: Any, domain: str, ca_file: str) -> Any:
    """An IPolicyForHTTPS verifying the certificate as ``mta-sts.DOMAIN`` whatever we dialled."""
    from twisted.internet import ssl
    from twisted.web.iweb import IPolicyForHTTPS

    trust = ssl.Certificate.loadPEM(Path(ca_file).read_bytes()) if ca_file else ssl.platformTrust()
    name = f"mta-sts.{domain}"

    @implementer(IPolicyForHTTPS)
    class Policy:
        def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
            return ssl.optionsForClientTLS(name, trustRoot=trust)

    return Policy()


class MTASTS:
    """Policies by domain, cached in memory for their max_age."""

    def __init__(self, reactor: Any, dns: Any, ca_file: str = "", host_override: str = "",
                 timeout: float = 60.0) -> None:
        self.reactor = reactor
        self.dns = dns
        self.ca_file = ca_file
        self.host_override = host_override
        self.timeout = timeout
        self._cache: dict[str, Policy] = {}

    async def policy(self, domain: str) -> Policy | None:
        domain = domain.lower()
        cached = self._cache.get(domain)
        if cached is not None and cached.expires < self.reactor.seconds():
            cached = None
            self._cache.pop(domain, None)
        try:
            policy_id = parse_txt(await self.dns.txt_or_empty(f"_mta-sts.{domain}"))
        except Exception:
            policy_id = None
        if policy_id is None:
            return cached                      # §5.1: a cached policy outlives a missing record
        if cached is not None and cached.id == policy_id:
            return cached
        fetched = await self._fetch(domain, policy_id)
        if fetched is not None:
            self._cache[domain] = fetched
            return fetched
        return cached

    async def _fetch(self, domain: str, policy_id: str) -> Policy | None:
        import treq
        from twisted.web.client import Agent

        host = self.host_override or f"mta-sts.{domain}"
        url = f"https://{host}/.well-known/mta-sts.txt"
        from tau.net.httpclient import quiet_pool

        agent = Agent(self.reactor, contextFactory=_https_policy(self.reactor, domain, self.ca_file),
                      connectTimeout=self.timeout, pool=quiet_pool(self.reactor))
        client = treq.client.HTTPClient(agent)
        try:
            response = await client.get(url, timeout=self.timeout, headers={"Host": f"mta-sts.{domain}"})
            if response.code != 200:
                log.info("mta-sts {domain}: HTTP {code}", domain=domain, code=response.code)
                return None
            ctype = response.headers.getRawHeaders("content-type", [""])[0]
            if not ctype.lower().startswith("text/plain"):
                return None
            body = await response.content()
        except Exception as exc:
            log.info("mta-sts {domain}: policy fetch failed: {exc}", domain=domain, exc=exc)
            return None
        if len(body) > MAX_POLICY:
            return None
        return parse_policy(body.decode("utf-8", "replace"), policy_id, self.reactor.seconds())
