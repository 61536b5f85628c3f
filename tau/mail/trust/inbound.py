"""Checks on mail arriving at the MX: SPF, DKIM, DMARC, Rspamd → a verdict and headers.

Called by the SMTP server at the end of data (``tau.mail.smtp.message``) through
``registry.inbound_checks``, whichever plugins run; in-process SMTP tests provide ``None`` there and
nothing is checked. Verdicts:
- DMARC fail with policy reject (RFC 7489 §6.6.4) → ``550 5.7.1``;
- SPF fail (RFC 7208 §8.4) without a DMARC pass (so DKIM-signed forwarded mail survives) →
  ``550 5.7.23`` (RFC 7372);
- a spam score at or over ``[spam] reject_score`` → ``550 5.7.1``;
- DMARC quarantine, or a spam score at or over ``junk_score`` → delivered to Junk;
- otherwise INBOX. DNS trouble never refuses mail (temperror is recorded, the mail accepted).
Accepted mail gets ``Authentication-Results`` (RFC 8601) after our own trace header, and any
Authentication-Results claiming our authserv-id is removed first (§5).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger

from tau.mail.trust import dkim, dmarc, rspamd, spf
from tau.mail.trust.signer import from_domain

if TYPE_CHECKING:
    from tau.registry import Registry

log = Logger()
MAX_SIGNATURES = 5


@dataclass
class Verdict:
    reject: bool = False
    code: int = 250
    text: str = ""
    mailbox: str = "INBOX"
    headers: bytes = b""
    key: str = ""
    size: int = 0
    raw: bytes | None = None
    results: dict[str, str] = dataclasses.field(default_factory=dict)  # spf, dkim, dmarc, spam, spam_score: logs
    reason: str = ""                                        # of a rejection: spf, dmarc, spam (metrics)


class InboundChecks:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.config = registry.config
        self.dns = registry.mail_dns
        self.authserv = self.config.trust.authserv_id or self.config.tau.hostname

    async def evaluate(self, ip: str, helo: str, mail_from: str, rcpts: list[str], queue_id: str,
                       raw: bytes) -> Verdict:
        cfg, spam_cfg = self.config.trust, self.config.spam
        d = defer.Deferred.fromCoroutine(self._authenticate(ip, helo, mail_from, raw))
        d.addTimeout(cfg.timeout, self.registry.reactor)
        try:
            spf_result, dkim_results, dmarc_result = await d
        except Exception as exc:
            if not isinstance(exc, defer.TimeoutError):
                log.failure("inbound checks failed")
            spf_result, dkim_results, dmarc_result = ("temperror", ""), [], dmarc.DmarcResult("temperror")
        dkim_text = ",".join(r.result for r in dkim_results) or "none"
        results = {"spf": spf_result[0] if cfg.spf else "off",
                   "dkim": dkim_text if self.config.dkim.verify else "off",
                   "dmarc": dmarc_result.result if cfg.dmarc else "off"}
        verdict = Verdict(results=results)
        header = self._auth_header(mail_from or f"postmaster@{helo}", spf_result, dkim_results, dmarc_result)
        if cfg.dmarc and dmarc_result.result == "fail" and dmarc_result.policy == "reject":
            return self._counted(Verdict(True, 550, f"5.7.1 Message rejected by the DMARC policy of "
                                                    f"{dmarc_result.domain}", results=results, reason="dmarc"))
        if cfg.spf and spf_result[0] == "fail" and dmarc_result.result != "pass":
            return self._counted(Verdict(True, 550, f"5.7.23 SPF check failed: {spf_result[1]} does not allow mail"
                                                    f" from {ip}", results=results, reason="spf"))
        if cfg.dmarc and dmarc_result.result == "fail" and dmarc_result.policy == "quarantine":
            verdict.mailbox = "Junk"
        url = spam_cfg.rspamd_url
        if url:
            junk, reject = float(spam_cfg.junk_score), float(spam_cfg.reject_score)
            result = await rspamd.check(url, raw, ip, helo, mail_from, rcpts, queue_id, spam_cfg.timeout)
            header += rspamd.headers(result, junk, reject).decode()
            results["spam"] = "unchecked" if result.score is None else "ham"
            if result.score is not None and (result.score >= reject or result.action == "reject"):
                results["spam"] = "reject"
                return self._counted(Verdict(True, 550, "5.7.1 Message rejected as spam", results=results,
                                             reason="spam"))
            if result.score is not None and (result.score >= junk or result.action in ("add header",
                                                                                        "rewrite subject")):
                verdict.mailbox, results["spam"] = "Junk", "junk"
            if result.score is not None:
                results["spam_score"] = f"{result.score:g}"
        verdict.headers = header.encode()
        return self._counted(verdict)

    def _auth_header(self, sender: str, spf_result: tuple[str, str], dkim_results: list[dkim.DkimResult],
                     dmarc_result: dmarc.DmarcResult) -> str:
        """The Authentication-Results field (RFC 8601) of these results."""
        cfg = self.config.trust
        parts = []
        if cfg.spf:
            parts.append(f"spf={spf_result[0]} smtp.mailfrom={_safe(sender)}")
        if self.config.dkim.verify:
            if not dkim_results:
                parts.append("dkim=none")
            for r in dkim_results:
                parts.append(f"dkim={r.result} header.d={_safe(r.domain)} header.s={_safe(r.selector)}"
                             f" header.a={_safe(r.algorithm)}")
        if cfg.dmarc:
            comment = f" (p={dmarc_result.published} dis={dmarc_result.policy})" if dmarc_result.published else ""
            parts.append(f"dmarc={dmarc_result.result}{comment} header.from={_safe(dmarc_result.domain or 'unknown')}")
        if not parts:
            parts.append("none")
        return f"Authentication-Results: {self.authserv};" + "".join(f"\r\n\t{p};" for p in parts)[:-1] + "\r\n"

    def _counted(self, verdict: Verdict) -> Verdict:
        """Count the results in ``tau_mail_auth_results`` and ``tau_mail_spam_verdicts``."""
        metrics = self.registry.metrics
        for method in ("spf", "dmarc"):
            if verdict.results.get(method, "off") != "off":
                metrics.mail_auth.labels(method, verdict.results[method]).inc()
        if verdict.results.get("dkim", "off") != "off":
            for result in verdict.results["dkim"].split(","):
                metrics.mail_auth.labels("dkim", result).inc()
        verdict.results.setdefault("spam", "unchecked")
        metrics.mail_spam.labels(verdict.results["spam"]).inc()
        return verdict

    async def _authenticate(self, ip: str, helo: str, mail_from: str,
                            raw: bytes) -> tuple[tuple[str, str], list[dkim.DkimResult], dmarc.DmarcResult]:
        cfg = self.config.trust
        spf_d = defer.Deferred.fromCoroutine(spf.check_host(self.dns, ip, mail_from, helo)) if cfg.spf \
            else defer.succeed(("none", ""))
        dkim_results: list[dkim.DkimResult] = []
        if self.config.dkim.verify:
            dkim_results = await self._dkim(raw)
        spf_result = await spf_d
        dmarc_result = dmarc.DmarcResult("none")
        if cfg.dmarc:
            dmarc_result = await dmarc.evaluate(self.dns, from_domain(raw), spf_result, dkim_results)
        return spf_result, dkim_results, dmarc_result

    async def _dkim(self, raw: bytes) -> list[dkim.DkimResult]:
        sigs = dkim.signatures(raw)[:MAX_SIGNATURES]
        if not sigs:
            return []
        txt: dict[str, list[str]] = {}
        for tags in sigs:
            name = f"{tags.get('s', '')}._domainkey.{tags.get('d', '')}".lower()
            if name in txt or not tags.get("s") or not tags.get("d"):
                continue
            try:
                txt[name] = [t for t in await self.dns.txt_or_empty(name)]
            except Exception:
                pass                                     # left out: temperror
        return await self.registry.run_in_thread(_verify_limited, raw, txt, len(sigs))

    async def apply(self, envelope: Any, key: str | None, size: int, held: bytes | bytearray | None) -> Verdict:
        """The SMTP hook: evaluate, then store the message with the headers in front (again,
        when it was streamed to a blob already; ``key`` None: only ``held`` has it)."""
        blobs = self.registry.blobs
        if key is None and held is None:
            raise ValueError("apply needs the stored key or the held bytes")
        raw = bytes(held) if held is not None else await blobs.read(key)
        verdict = await self.evaluate(getattr(envelope, "client_ip", "") or "0.0.0.0",
                                      getattr(envelope, "helo", "") or "", envelope.mail_from,
                                      list(envelope.recipients), envelope.queue_id, raw)
        store = self.registry.mail_store
        if verdict.reject:
            if store is not None and key is not None:
                await store.discard_blob(key)
            return verdict
        new = insert_headers(raw, verdict.headers, self.authserv)
        info = await blobs.put(new)
        if store is not None and key is not None and info.key != key:
            await store.discard_blob(key)
        verdict.key, verdict.size, verdict.raw = info.key, info.size, new
        return verdict


def _verify_limited(raw: bytes, txt: dict[str, list[str]], count: int) -> list[dkim.DkimResult]:
    return dkim.verify(raw, txt)[:count]


def _safe(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9@._+=-]", "", value or "")[:200] or "unknown"


def insert_headers(raw: bytes, headers: bytes, authserv: str) -> bytes:
    """``headers`` after our leading trace fields (Return-Path, Received and their folded lines);
    Authentication-Results claiming ``authserv`` are dropped from the rest (RFC 8601 §5)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    fields = re.split(rb"\r\n(?![ \t])", head)
    keep: list[bytes] = []
    lead = 0
    leading = True
    for field in fields:
        name = field.split(b":", 1)[0].strip().lower()
        if leading and name in (b"return-path", b"received") and lead < 2:
            lead += 1
            keep.append(field)
            continue
        leading = False
        if name == b"authentication-results":
            value = field.split(b":", 1)[1].strip().split(b";", 1)[0].strip().lower()
            if value == authserv.lower().encode():
                continue
        keep.append(field)
    out = keep[:lead] + ([headers.rstrip(b"\r\n")] if headers else []) + keep[lead:]
    return b"\r\n".join(out) + sep + body
