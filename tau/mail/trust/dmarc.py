"""DMARC (RFC 7489): policy discovery (§6.6.3), identifier alignment (§3.1) and the verdict.

Discovery asks ``_dmarc.<From domain>``, then ``_dmarc.<organizational domain>`` (whose ``sp=``
then applies). The organizational domain comes from the Public Suffix List (§3.2) as the ``tld``
package ships it; a name under no listed suffix falls back to the list's default rule ``*`` (the
last two labels), which is what RFC 7489 prescribes. DMARC passes when SPF or DKIM passed for a domain
aligned with the From domain (relaxed: same organizational domain; strict: equal).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from tld import get_fld

from tau.mail.outbound.dns import DNSTempError, NoSuchDomain

get_fld("example.com", fix_protocol=True)  # parse the bundled list (~60 ms) at import, not on the reactor


def org_domain(domain: str) -> str:
    """The registered domain: one label below the longest matching public suffix."""
    name = domain.lower().rstrip(".")
    registered = get_fld(name, fix_protocol=True, fail_silently=True)
    if registered:
        return registered
    return ".".join(name.split(".")[-2:])


def aligned(a: str, b: str, mode: str) -> bool:
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    if mode == "s":
        return a == b
    return org_domain(a) == org_domain(b)


@dataclass(frozen=True)
class Record:
    p: str
    sp: str
    adkim: str
    aspf: str
    pct: int


def parse(text: str) -> Record | None:
    """§6.3: ``v=DMARC1`` first; an unknown ``p`` makes the record invalid (§6.6.3 step 6)."""
    tags: dict[str, str] = {}
    for i, part in enumerate(p for p in text.split(";") if p.strip()):
        key, _, value = part.strip().partition("=")
        key, value = key.strip().lower(), value.strip()
        if i == 0 and (key != "v" or value != "DMARC1"):
            return None
        tags[key] = value
    p = tags.get("p", "").lower()
    if p not in ("none", "quarantine", "reject"):
        return None
    sp = tags.get("sp", p).lower()
    try:
        pct = max(0, min(100, int(tags.get("pct", "100"))))
    except ValueError:
        pct = 100
    return Record(p, sp if sp in ("none", "quarantine", "reject") else p, tags.get("adkim", "r").lower()[:1] or "r",
                  tags.get("aspf", "r").lower()[:1] or "r", pct)


@dataclass(frozen=True)
class DmarcResult:
    result: str            # pass | fail | none | temperror | permerror (RFC 8601 §2.7.?)
    policy: str = "none"   # the policy to apply: none | quarantine | reject
    domain: str = ""       # header.from
    published: str = ""    # p= as published (for the A-R comment)


async def lookup(dns: Any, from_domain: str) -> tuple[Record | None, bool]:
    """(record, found at the organizational domain). Raises DNSTempError."""
    for name, at_org in ((from_domain, False), (org_domain(from_domain), True)):
        if at_org and name == from_domain:
            break
        try:
            texts = await dns.txt(f"_dmarc.{name}")
        except NoSuchDomain:
            continue
        records = [r for r in (parse(t) for t in texts if t.replace(" ", "").startswith("v=DMARC1")) if r]
        if len(records) == 1:
            return records[0], at_org
    return None, False


async def evaluate(dns: Any, from_domain: str | None, spf: tuple[str, str], dkim: list[Any],
                   sample: float | None = None) -> DmarcResult:
    """``spf`` = (result, MAIL FROM domain); ``dkim`` = DkimResult list."""
    if not from_domain:
        return DmarcResult("none")
    try:
        record, at_org = await lookup(dns, from_domain)
    except DNSTempError:
        return DmarcResult("temperror", domain=from_domain)
    if record is None:
        return DmarcResult("none", domain=from_domain)
    spf_ok = spf[0] == "pass" and aligned(spf[1], from_domain, record.aspf)
    dkim_ok = any(r.result == "pass" and aligned(r.domain, from_domain, record.adkim) for r in dkim)
    if spf_ok or dkim_ok:
        return DmarcResult("pass", "none", from_domain, record.p)
    policy = record.sp if at_org else record.p
    roll = random.random() * 100 if sample is None else sample
    if roll >= record.pct:
        policy = "quarantine" if policy == "reject" else "none"   # §6.6.4 sampled-out
    return DmarcResult("fail", policy, from_domain, record.p)
