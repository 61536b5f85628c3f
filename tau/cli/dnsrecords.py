"""The DNS records ``tau check`` tells operators to publish, derived from the configuration.

Mail routing and trust (MX, SPF, DMARC, DKIM, MTA-STS with TLS-RPT), client discovery (RFC 6186
SRV records for submission and IMAP, RFC 5804 for ManageSieve, RFC 6764 for CalDAV and CardDAV)
and the names Thunderbird (``autoconfig.``) and Outlook (``autodiscover.``) look for. A service
that is not configured gets RFC 6186's "not offered here" record, ``0 0 0 .``.
The same :mod:`tau.clientsetup.settings` builds the answers the daemon serves to those names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tau.clientsetup.settings import client_settings, listener_value, mta_sts_id, mta_sts_policy
from tau.net.endpoints import endpoint_address

#: RFC 6186 / RFC 5804 SRV service -> the listener that provides it
SRV_LISTENERS = (("_submission._tcp", "submission"), ("_submissions._tcp", "submissions"),
                 ("_imap._tcp", "imap"), ("_imaps._tcp", "imaps"))
NOT_OFFERED = "0 0 0 ."


@dataclass(frozen=True)
class Record:
    name: str    # absolute, with the trailing dot
    type: str    # MX | TXT | CNAME | SRV
    value: str   # as a zone file writes it (TXT quoted)
    policy: bool = False  # a value operators may well choose otherwise (SPF, DMARC, TLS-RPT)


def quoted(text: str) -> str:
    """TXT character-strings hold at most 255 octets (RFC 1035 §3.3.14)."""
    return " ".join(f'"{text[i:i + 250]}"' for i in range(0, len(text), 250))


def _srv(config: Any, domain: str, service: str, listener: str) -> Record:
    port = endpoint_address(listener_value(config, listener))[1] if listener_value(config, listener) else None
    value = f"0 1 {port} {config.tau.hostname}." if port else NOT_OFFERED
    return Record(f"{service}.{domain}.", "SRV", value)


def domain_records(config: Any, domain: str) -> list[Record]:
    hostname = config.tau.hostname
    web_host, web_port, https = client_settings(config).web
    rows = [Record(f"{domain}.", "MX", f"10 {hostname}."),
            Record(f"{domain}.", "TXT", quoted("v=spf1 mx -all"), policy=True),
            Record(f"_dmarc.{domain}.", "TXT", quoted("v=DMARC1; p=quarantine"), policy=True),
            Record(f"_mta-sts.{domain}.", "TXT", quoted(f"v=STSv1; id={mta_sts_id(config)}")),
            Record(f"mta-sts.{domain}.", "CNAME", f"{web_host}."),
            Record(f"_smtp._tls.{domain}.", "TXT", quoted(f"v=TLSRPTv1; rua=mailto:postmaster@{domain}"),
                   policy=True)]
    rows += [_srv(config, domain, service, listener) for service, listener in SRV_LISTENERS]
    if listener_value(config, "managesieve"):
        rows.append(_srv(config, domain, "_sieve._tcp", "managesieve"))
    dav = f"0 1 {web_port} {web_host}."
    suffix = "s" if https else ""
    rows += [Record(f"_caldav{suffix}._tcp.{domain}.", "SRV", dav),
             Record(f"_carddav{suffix}._tcp.{domain}.", "SRV", dav),
             Record(f"autoconfig.{domain}.", "CNAME", f"{web_host}."),
             Record(f"autodiscover.{domain}.", "CNAME", f"{web_host}."),
             Record(f"_autodiscover._tcp.{domain}.", "SRV", dav)]
    return rows


def all_records(config: Any, domains: list[str]) -> list[Record]:
    from tau.cli import dkim

    dkim_rows = {d: [Record(n, t, v) for n, t, v in dkim.records(config)
                     if n.rstrip(".").split("._domainkey.")[-1] == d] for d in domains}
    out: list[Record] = []
    for domain in domains:
        rows = domain_records(config, domain)
        out += rows[:3] + dkim_rows[domain] + rows[3:]
    return out


def print_records(config: Any, domains: list[str], rows: list[Record]) -> None:
    hostname = config.tau.hostname
    width = max(len(r.name) for r in rows)
    for row in rows:
        print(f"  {row.name.ljust(width)}  {row.type:<5}  {row.value}")
    for domain in domains:
        if not any(r.name.endswith(f"._domainkey.{domain}.") for r in rows):
            print(f"  DKIM for {domain}: run `tau dkim keygen {domain}`")
    policy = "".join(f"    {line}\n" for line in mta_sts_policy(config).splitlines())
    web_host = client_settings(config).web[0]
    print(f"  MTA-STS (RFC 8461): tau serves this policy at https://mta-sts.DOMAIN/.well-known/mta-sts.txt\n"
          f"  once mta-sts.DOMAIN reaches its HTTPS listener on port 443 ({web_host}):\n{policy}"
          "  the TLS certificate must also name mta-sts.DOMAIN, autoconfig.DOMAIN and autodiscover.DOMAIN")
    if "." not in hostname or hostname.endswith((".localhost", ".local", ".test", ".invalid")):
        print(f"  note: [tau] hostname {hostname} is not a public name; MX must point at one "
              "with an A/AAAA record for this server")
