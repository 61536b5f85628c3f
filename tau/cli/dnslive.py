"""``tau check --live``: look every record up and say which are there, missing or wrong.

Asks the DNS server the outbound code asks (``[outbound] resolver``, ``host:port``; else the
system's), with dnspython. A record is compared the way a client reads it: MX by preference and
host, SRV by port and target (priority and weight are the operator's), TXT by its ``v=`` family
(exact text), CNAME by target or, for a name with A/AAAA records instead, by the same addresses.
Missing and wrong records fail the check; a policy record (SPF, DMARC, TLS-RPT) that exists but
says something else is only a warning: the operator may mean it.
"""

from __future__ import annotations

import re
from typing import Any

from tau.cli.dnsrecords import NOT_OFFERED, Record

TIMEOUT = 3.0


class Lookup:
    def __init__(self, server: str) -> None:
        import dns.resolver

        self.errors = (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers)
        self.timeout = dns.exception.Timeout
        if server:
            from tau.mail.outbound.dns import parse_server

            host, port = parse_server(server)
            self.resolver = dns.resolver.Resolver(configure=False)
            self.resolver.nameservers, self.resolver.port = [host], port
        else:
            self.resolver = dns.resolver.Resolver()
        self.resolver.lifetime = self.resolver.timeout = TIMEOUT

    def answers(self, name: str, kind: str) -> list[str] | None:
        """Normalised answers; [] when there are none; None when the server did not answer."""
        try:
            answer = self.resolver.resolve(name, kind, raise_on_no_answer=True)
        except self.errors:
            return []
        except self.timeout:
            return None
        return [_text(kind, rr) for rr in answer]


def _text(kind: str, rr: Any) -> str:
    if kind == "TXT":
        return b"".join(rr.strings).decode("utf-8", "replace")
    if kind == "MX":
        return f"{rr.preference} {str(rr.exchange).lower()}"
    if kind == "SRV":
        return f"{rr.port} {str(rr.target).lower()}"
    if kind == "CNAME":
        return str(rr.target).lower()
    return str(rr.to_text()).lower()


def _unquote(value: str) -> str:
    return "".join(part for i, part in enumerate(value.split('"')) if i % 2 == 1)


def _family(text: str) -> str:
    """``v=spf1``, ``v=dmarc1``, ``v=stsv1``...: what kind of TXT record this is."""
    return re.split(r"[;\s]", text.strip(), maxsplit=1)[0].replace(" ", "").lower()


def verdict(lookup: Lookup, record: Record) -> tuple[str, str]:
    """``(status, text)``: ok, warn or FAIL and what was found."""
    if record.type == "CNAME":
        return _cname(lookup, record)
    found = lookup.answers(record.name, record.type)
    if found is None:
        return "FAIL", "no answer from the DNS server"
    if record.type == "TXT":
        want = _unquote(record.value)
        same = [t for t in found if _family(t) == _family(want)]
        if want in same:
            return "ok", "published"
        if not same:
            return "FAIL", "missing"
        return ("warn" if record.policy else "FAIL"), f"differs: {same[0]!r}"
    if record.type == "SRV":
        fields = record.value.split()
        want = f"{fields[2]} {fields[3].lower()}"
        if record.value == NOT_OFFERED:
            return ("ok", "not published (not offered)") if not found or found == ["0 ."] else (
                "FAIL", f"points at {found[0]}, but this tau does not offer the service")
    else:
        want = record.value.lower()
    if want in found:
        return "ok", "published"
    return ("FAIL", "missing") if not found else ("FAIL", f"wrong: {', '.join(found)}")


def _cname(lookup: Lookup, record: Record) -> tuple[str, str]:
    found = lookup.answers(record.name, "CNAME")
    if found is None:
        return "FAIL", "no answer from the DNS server"
    target = record.value.lower()
    if target in found:
        return "ok", "published"
    if found:
        return "FAIL", f"wrong: CNAME {found[0]}"
    mine = lookup.answers(record.name, "A") or []
    theirs = lookup.answers(target, "A") or []
    if mine and set(mine) == set(theirs):
        return "ok", "A record with the same address"
    return "FAIL", "missing" if not mine else f"wrong: A {', '.join(mine)}"


def check(config: Any, rows: list[Record], report: Any) -> None:
    try:
        lookup = Lookup(config.outbound.resolver)
    except (ImportError, ValueError, OSError) as exc:
        report.line("FAIL", "dns", f"cannot look records up: {exc}")
        return
    for row in rows:
        status, text = verdict(lookup, row)
        report.line(status, "dns", f"{row.name} {row.type}: {text}")
