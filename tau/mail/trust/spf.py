"""SPF (RFC 7208): ``check_host()`` evaluated with our own async DNS (``twisted.names``).

Why not pyspf: it does its own blocking DNS through dnspython (a worker thread per check and a
resolver of its own next to ``[outbound] resolver``); the algorithm is small. Implemented: the
mechanisms all, include, a, mx, ptr (never matches: §5.5 says not to use it, and a receiver may
skip it), ip4, ip6, exists; the redirect modifier; macros (§7) for the common letters; the limit
of 10 DNS-querying terms (§4.6.4) and of 2 void look-ups (§4.6.4), both permerror when exceeded.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from tau.mail.outbound.dns import DNSTempError, NoSuchDomain

MAX_LOOKUPS = 10
MAX_VOID = 2
_QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
_MACRO = re.compile(r"%\{([slodiphcrtv])(\d*)(r?)([-.+,/_=]*)\}|%%|%_|%-")


class PermError(Exception):
    pass


class TempError(Exception):
    pass


@dataclass
class _Ctx:
    ip: Any
    sender: str
    helo: str
    lookups: int = 0
    void: int = 0


async def check_host(dns: Any, ip: str, mail_from: str, helo: str) -> tuple[str, str]:
    """(result, the domain checked): pass | fail | softfail | neutral | none | temperror | permerror."""
    sender = mail_from or f"postmaster@{helo}"
    domain = sender.rpartition("@")[2].lower().rstrip(".")
    if not domain or "." not in domain:
        return "none", domain
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return "permerror", domain
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    ctx = _Ctx(address, sender if "@" in sender else f"postmaster@{sender}", helo)
    try:
        return await _check(dns, ctx, domain), domain
    except PermError:
        return "permerror", domain
    except TempError:
        return "temperror", domain


async def _record(dns: Any, domain: str) -> str | None:
    try:
        texts = await dns.txt(domain)
    except NoSuchDomain:
        return None
    except DNSTempError:
        raise TempError(domain)
    found = [t for t in texts if t.lower() == "v=spf1" or t.lower().startswith("v=spf1 ")]
    if len(found) > 1:
        raise PermError("several SPF records")       # §4.5
    return found[0] if found else None


async def _check(dns: Any, ctx: _Ctx, domain: str) -> str:
    record = await _record(dns, domain)
    if record is None:
        return "none"
    redirect = None
    for term in record.split()[1:]:
        name, eq, value = term.partition("=")
        if eq and re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]*", name):
            if name.lower() == "redirect":
                redirect = value
            continue                                   # exp= and unknown modifiers: ignored (§6)
        qualifier = "+"
        if term[:1] in _QUALIFIERS:
            qualifier, term = term[0], term[1:]
        if await _matches(dns, ctx, domain, term):
            return _QUALIFIERS[qualifier]
    if redirect is not None:
        _count(ctx)
        target = _expand(redirect, ctx, domain)
        result = await _check(dns, ctx, target)
        if result == "none":
            raise PermError("redirect to a domain without SPF")
        return result
    return "neutral"


def _count(ctx: _Ctx) -> None:
    ctx.lookups += 1
    if ctx.lookups > MAX_LOOKUPS:
        raise PermError("too many DNS lookups")


def _void(ctx: _Ctx) -> None:
    ctx.void += 1
    if ctx.void > MAX_VOID:
        raise PermError("too many void lookups")


def _split(term: str, domain: str, ctx: _Ctx) -> tuple[str, int | None, int | None]:
    """``a:example.org/24//64`` → (domain, cidr4, cidr6)."""
    spec, _, rest = term.partition(":")
    cidr4 = cidr6 = None
    target = rest if rest else ""
    m = re.search(r"(?:/(\d+))?(?://(\d+))?$", target if target else spec)
    if m and m.group(0):
        if target:
            target = target[: m.start()]
        cidr4 = int(m.group(1)) if m.group(1) else None
        cidr6 = int(m.group(2)) if m.group(2) else None
    return (_expand(target, ctx, domain) if target else domain), cidr4, cidr6


def _in(ctx: _Ctx, addresses: list[str], cidr4: int | None, cidr6: int | None) -> bool:
    for addr in addresses:
        cidr = cidr6 if ":" in addr else cidr4
        try:
            net = ipaddress.ip_network(addr if cidr is None else f"{addr}/{cidr}", strict=False)
        except ValueError:
            continue
        if ctx.ip.version == net.version and ctx.ip in net:
            return True
    return False


async def _addresses(dns: Any, ctx: _Ctx, host: str) -> list[str]:
    try:
        return await dns.a(host, ipv6=ctx.ip.version == 6)
    except NoSuchDomain:
        _void(ctx)
        return []
    except DNSTempError:
        raise TempError(host)


async def _matches(dns: Any, ctx: _Ctx, domain: str, term: str) -> bool:
    mech = re.split(r"[:/]", term, maxsplit=1)[0].lower()
    if mech == "all":
        return True
    if mech == "include":
        _count(ctx)
        target = _expand(term.partition(":")[2], ctx, domain)
        if not target:
            raise PermError("include without a domain")
        result = await _check(dns, ctx, target)
        if result == "temperror":
            raise TempError(target)
        if result in ("permerror", "none"):
            raise PermError(f"include:{target} gave {result}")
        return result == "pass"
    if mech == "a":
        _count(ctx)
        target, c4, c6 = _split(term, domain, ctx)
        return _in(ctx, await _addresses(dns, ctx, target), c4, c6)
    if mech == "mx":
        _count(ctx)
        target, c4, c6 = _split(term, domain, ctx)
        try:
            mxs = await dns.mx(target)
        except NoSuchDomain:
            _void(ctx)
            return False
        except DNSTempError:
            raise TempError(target)
        if len(mxs) > 10:
            raise PermError("more than 10 MX names")
        for _, host in mxs:
            if host and _in(ctx, await _addresses(dns, ctx, host), c4, c6):
                return True
        return False
    if mech == "ptr":
        _count(ctx)
        return False
    if mech in ("ip4", "ip6"):
        value = term.partition(":")[2]
        try:
            net = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise PermError(f"bad {mech} {value!r}")
        return ctx.ip.version == net.version and ctx.ip in net
    if mech == "exists":
        _count(ctx)
        target = _expand(term.partition(":")[2], ctx, domain)
        try:
            return bool(await dns.a(target))
        except NoSuchDomain:
            _void(ctx)
            return False
        except DNSTempError:
            raise TempError(target)
    raise PermError(f"unknown mechanism {term!r}")


def _expand(spec: str, ctx: _Ctx, domain: str) -> str:
    """§7 macro expansion (letters s l o d i h v; digits, ``r`` and delimiters)."""
    local, _, sender_domain = ctx.sender.rpartition("@")

    def value(letter: str) -> str:
        if letter == "s":
            return ctx.sender
        if letter == "l":
            return local or "postmaster"
        if letter == "o":
            return sender_domain
        if letter == "d":
            return domain
        if letter == "i":
            if ctx.ip.version == 4:
                return str(ctx.ip)
            return ".".join(ctx.ip.exploded.replace(":", ""))
        if letter == "h":
            return ctx.helo
        if letter == "v":
            return "in-addr" if ctx.ip.version == 4 else "ip6"
        return ""

    def sub(m: re.Match[str]) -> str:
        whole = m.group(0)
        if whole == "%%":
            return "%"
        if whole == "%_":
            return " "
        if whole == "%-":
            return "%20"
        parts = re.split("[" + re.escape(m.group(4) or ".") + "]", value(m.group(1)))
        if m.group(3):
            parts.reverse()
        if m.group(2):
            parts = parts[-int(m.group(2)):] if int(m.group(2)) else parts
        return ".".join(parts)

    return _MACRO.sub(sub, spec).rstrip(".")
