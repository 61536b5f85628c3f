"""Mail → chat, the automatic half: unread chat messages are summarised by email to users who
have been offline for ``[flows] chat_digest_after`` seconds.

Every round (a LoopingCall on the registry's clock, a sixth of that delay, between 1 s and 5 min)
finds users with messages from others that are older than the delay, above their watermark and
unread (``tau.flows.digest_store``), skips anyone whose presence (the messenger's own, shared
through Redis in a cluster) shows a live socket or a ``last_seen`` within the delay, and delivers
one summary into their INBOX through the mail store, as local delivery does. So IMAP IDLE and
``GET /api/emails`` see it like any mail, on any node.

The summary names senders, conversations (title or id), counts and times, never a body: most
conversations are end-to-end encrypted, and for plaintext ones the server will not copy what
the user chose to say in chat into mail. It is built from that one user's rows only.
Each message is summarised at most once, and in a cluster only the node whose watermark claim
commits sends (``digest_store.claim_and_deliver``). A user gets at most one digest per delay.
While the Redis bus is degraded presence cannot be trusted, so no digest goes out at all.
"""

from __future__ import annotations

import email.policy
import email.utils
import unicodedata
from collections import Counter
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.logger import Logger

from tau.flows import digest_store
from tau.flows.digest_store import Lost, Unread

if TYPE_CHECKING:
    from tau.registry import Registry

log = Logger()
MAX_USERS = 500        # per round; the next round carries on


def interval_for(after: int) -> float:
    return float(min(300, max(1, after // 6)))


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _clean(text: str, limit: int = 80) -> str:
    """A conversation title as one harmless line (it is whatever a member typed)."""
    out = "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in text).strip()
    out = " ".join(out.split())
    return out[:limit] + ("…" if len(out) > limit else "")


def _span(items: list[Unread]) -> str:
    first, last = _when(items[0].created_ms), _when(items[-1].created_ms)
    return first if first == last else f"{first} to {last}"


def _conversation_line(address: str, items: list[Unread]) -> str:
    first, n = items[0], len(items)
    count = f"{n} message{'s' * (n != 1)}"
    if first.kind == "direct":
        other = next((i.sender for i in items if i.sender and i.sender != address), "a deleted account")
        return f"* {other} (direct conversation {first.conversation}): {count}, {_span(items)}"
    title = _clean(first.title)
    name = f"\"{title}\" (conversation {first.conversation})" if title else f"group conversation {first.conversation}"
    who = Counter(i.sender or "a deleted account" for i in items)
    return (f"* {name}: {count}, " + ", ".join(f"from {s} ({c})" for s, c in who.most_common())
            + f", {_span(items)}")


def summary_text(address: str, unread: list[Unread], public_url: str) -> tuple[str, str]:
    """(subject, body): senders, conversations, counts and times — no message content."""
    by_conv: dict[int, list[Unread]] = {}
    for item in unread:
        by_conv.setdefault(item.conversation, []).append(item)
    senders = Counter(i.sender or "a deleted account" for i in unread)
    n, k = len(unread), len(by_conv)
    head = (f"You have {n} unread message{'s' * (n != 1)} in {k} conversation{'s' * (k != 1)}: "
            + ", ".join(f"from {who} ({count})" for who, count in senders.most_common()) + ".")
    lines = [f"Hello {address},", "", head, ""]
    lines += [_conversation_line(address, items) for items in by_conv.values()]
    lines += ["", "Message contents are never included in these emails (chat is end-to-end encrypted).",
              f"Read them in TauMessenger (for example `tau chat listen`) on {public_url}/", "",
              "You get this summary because you were offline. It covers each message once."]
    subject = f"{n} unread chat message{'s' * (n != 1)} in {k} conversation{'s' * (k != 1)}"
    return subject, "\n".join(lines) + "\n"


def build_digest(address: str, unread: list[Unread], public_url: str, hostname: str, ident: str,
                 now_s: float) -> bytes:
    subject, text = summary_text(address, unread, public_url)
    domain = address.rpartition("@")[2] or hostname
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = f"TauMessenger <noreply@{domain}>"
    msg["To"] = address
    msg["Subject"] = subject
    msg["Date"] = email.utils.formatdate(now_s, localtime=False)
    msg["Message-ID"] = f"<chat-digest.{ident}@{hostname}>"
    msg["Auto-Submitted"] = "auto-generated"       # RFC 3834 §5: no vacation replies to this
    msg["X-Tau-Digest"] = "chat"
    msg.set_content(text, cte="quoted-printable")
    raw = msg.as_bytes(policy=email.policy.SMTP)
    return raw if raw.endswith(b"\r\n") else raw + b"\r\n"


class ChatDigest(Service):
    """The periodic job; ``run_once`` is one round (tests call it with a fake clock)."""

    name = "flows-chat-digest"

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.after: int = registry.config.flows.chat_digest_after
        self.interval = interval_for(self.after)
        self._loop: task.LoopingCall | None = None
        self._running: defer.Deferred[Any] | None = None
        self._backoff: dict[int, float] = {}     # user id → no retry before (quota trouble)
        self.sent = 0

    def startService(self) -> None:  # noqa: N802 - twisted.application spelling
        super().startService()
        if self.after <= 0:
            return
        self._loop = task.LoopingCall(self._tick)
        self._loop.clock = self.registry.clock
        self._loop.start(self.interval, now=False)

    def stopService(self) -> Any:  # noqa: N802
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        return self._running

    def _tick(self) -> None:
        if self._running is not None:
            return           # a slow round (big install, slow database) is not run twice at once
        self._running = defer.ensureDeferred(self.run_once())
        self._running.addErrback(lambda f: log.failure("chat digest round failed", f))
        self._running.addBoth(self._done)

    def _done(self, _: Any) -> None:
        self._running = None

    @property
    def presence(self) -> Any:
        """The messenger's presence (its live sockets; Redis-backed in a cluster)."""
        return self.registry.messenger.presence

    def _bus_ok(self) -> bool:
        check = self.registry.health_checks.get("bus")
        return check is None or check() == "ok"

    async def run_once(self) -> int:
        """One round; returns how many digests this node delivered."""
        if self.after <= 0 or not self._bus_ok():
            return 0
        now_s = self.registry.clock.seconds()
        now_ms = int(now_s * 1000)
        cutoff = now_ms - self.after * 1000
        since = now_ms - max(digest_store.LOOKBACK_MS, self.after * 2000)
        users = await self.registry.db.run("flows_digest_candidates", digest_store.candidates, since, cutoff, cutoff,
                                           MAX_USERS, readonly=True)
        sent = 0
        for user_id, address in users:
            if self._backoff.get(user_id, 0) > now_s or not await self._offline(address, now_s):
                continue
            try:
                sent += await self._one(user_id, address, since, cutoff, now_ms)
            except Exception:
                log.failure("chat digest for {user} failed", user=address)
        self.sent += sent
        return sent

    async def _offline(self, address: str, now_s: float) -> bool:
        [state] = await self.presence.get([address])
        seen = state.get("last_seen")
        if not self._bus_ok():
            return False        # Redis went away during the round: presence is a guess now
        return state.get("status") == "offline" and (seen is None or now_s - float(seen) >= self.after)

    async def _one(self, user_id: int, address: str, since: int, cutoff: int, now_ms: int) -> int:
        from tau.mail.store import QuotaExceeded
        from tau.mail.store.fields import prepare

        reg = self.registry
        old = await reg.db.run("flows_digest_watermark", digest_store.watermark, user_id)
        found, mark = await reg.db.run("flows_digest_unread", digest_store.unread, user_id, old, since, cutoff,
                                       readonly=True)
        if mark == old:
            return 0
        if not found:           # everything new was read: move on without mail
            try:
                await reg.db.run("flows_digest_skip", digest_store.advance, user_id, old, mark, None)
            except Lost:
                pass
            return 0
        raw = build_digest(address, found, reg.public_url, reg.config.tau.hostname, f"{user_id}.{mark}",
                           now_ms / 1000)
        store = reg.mail_store
        info = await reg.blobs.put(raw)
        try:
            fields = await reg.run_in_thread(prepare, None, raw)
            await reg.db.run("flows_digest_deliver", digest_store.claim_and_deliver, store.ctx, user_id, address,
                             old, mark, now_ms, info.key, info.size, fields)
        except Lost:
            await store.discard_blob(info.key)
            return 0
        except QuotaExceeded:
            await store.discard_blob(info.key)
            self._backoff[user_id] = reg.clock.seconds() + self.after
            log.warn("chat digest for {user} not delivered: mailbox over quota", user=address)
            return 0
        except BaseException:
            await store.discard_blob(info.key)
            raise
        log.info("chat digest delivered to {user}: {n} message(s)", user=address, n=len(found))
        return 1
