"""Connection-level commands: CAPABILITY, NOOP, LOGOUT (RFC 3501 §6.1), STARTTLS, LOGIN,
AUTHENTICATE PLAIN (§6.2, RFC 4616, SASL-IR RFC 4959), ID (RFC 2971), ENABLE (RFC 5161),
NAMESPACE (RFC 2342).

LOGIN and AUTHENTICATE are refused before TLS unless the peer is on loopback (``LOGINDISABLED``,
RFC 3501 §6.2.3). Every attempt goes through the shared authenticator, which throttles failures
per account and IP; failures are logged and counted in ``tau_logins``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from twisted.logger import Logger

from tau.auth.authenticator import LoginFailed, LoginThrottled

from . import qresync, rev2
from .base import ANY, AUTHED, SYNC_NONE, Bad, No, State, command
from .parser import ParseError, Parser
from .response import quote

log = Logger(namespace="tau.mail.imap")

BASE_CAPS = "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE"
AUTHED_CAPS = (BASE_CAPS + " NAMESPACE UIDPLUS MOVE SPECIAL-USE LIST-EXTENDED LIST-STATUS CONDSTORE"
               " QRESYNC UNSELECT CHILDREN STATUS=SIZE BINARY"
               " ESEARCH SEARCHRES SORT SORT=DISPLAY ESORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES")
#: RFC 4978, RFC 3502, RFC 9208, RFC 6154 §3, RFC 5465 (compress.py, append.py, quota.py, special_use.py,
#: notify.py)
EXT_CAPS = " COMPRESS=DEFLATE MULTIAPPEND QUOTA QUOTA=RES-STORAGE CREATE-SPECIAL-USE NOTIFY"
BASE_CAPS += " IMAP4rev2"      # RFC 9051, alongside rev1 until ENABLE IMAP4rev2 (rev2.py)
AUTHED_CAPS += " IMAP4rev2 UTF8=ACCEPT"  # RFC 6855 (rev2.py)
SERVER_ID = {"name": "tau", "vendor": "tau", "support-url": "https://example.invalid/tau"}


def login_allowed(conn: Any) -> bool:
    """INTERFACE.md: plaintext login only over TLS or from a loopback peer."""
    return bool(conn.tls or conn.loopback)


def capabilities(conn: Any) -> str:
    if conn.state & AUTHED:
        limit = int(conn.registry.config.limits.message_size or 0)  # APPENDLIMIT, RFC 7889
        return AUTHED_CAPS + EXT_CAPS + (f" APPENDLIMIT={limit}" if limit else "")
    caps = BASE_CAPS
    if not conn.tls:
        caps += " STARTTLS"
    caps += " AUTH=PLAIN" if login_allowed(conn) else " LOGINDISABLED"
    return caps


@command("CAPABILITY", ANY, SYNC_NONE)
async def do_capability(conn: Any, tag: str, p: Parser) -> str:
    p.end()
    conn.untagged("CAPABILITY " + capabilities(conn))
    return "Capability completed"


@command("NOOP", ANY)
async def do_noop(conn: Any, tag: str, p: Parser) -> str:
    """RFC 3501 §6.1.2: the polling point; re-checks the selected mailbox against the store."""
    p.end()
    if conn.selected is not None:
        conn.selected.touch()
    return "NOOP completed"


@command("LOGOUT", ANY, SYNC_NONE)
async def do_logout(conn: Any, tag: str, p: Parser) -> None:
    p.end()
    conn.write(b"* BYE tau IMAP4rev1 server logging out\r\n" + tag.encode() + b" OK Logout completed\r\n")
    conn.select(None)
    conn.state = State.LOGOUT
    conn.transport.loseConnection()


@command("STARTTLS", State.NOT_AUTH, SYNC_NONE)
async def do_starttls(conn: Any, tag: str, p: Parser) -> None:
    """RFC 3501 §6.2.1; input pipelined behind the command is discarded (no plaintext injection)."""
    p.end()
    if conn.tls:
        raise Bad("TLS is already active")
    try:
        ctx = conn.registry.tls.server_context_factory()
    except Exception:  # noqa: BLE001 - no certificate configured
        log.failure("STARTTLS unavailable")
        raise No("TLS not available") from None
    conn.write(tag.encode() + b" OK Begin TLS negotiation now\r\n")
    del conn._buf[:]
    conn.transport.startTLS(ctx)
    conn.tls = True


@command("LOGIN", State.NOT_AUTH, SYNC_NONE)
async def do_login(conn: Any, tag: str, p: Parser) -> str:
    user = p.astring()
    p.sp()
    password = p.astring()
    p.end()
    return await _login(conn, user.decode("utf-8", "replace"), password.decode("utf-8", "replace"))


@command("AUTHENTICATE", State.NOT_AUTH, SYNC_NONE)
async def do_authenticate(conn: Any, tag: str, p: Parser) -> str:
    mechanism = p.keyword()
    initial = None
    if p.take(b" "):
        initial = p.take_while(frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="))
    p.end()
    if mechanism != "PLAIN":
        raise No("Unsupported authentication mechanism", "CANNOT")
    if not login_allowed(conn):
        raise No("Use STARTTLS first", "PRIVACYREQUIRED")
    if initial is None:
        conn.write(b"+ \r\n")
        initial = (await conn.read_line()).strip()
    if initial == b"*":
        raise Bad("Authentication canceled")
    try:
        decoded = b"" if initial == b"=" else base64.b64decode(initial, validate=True)
        authzid, authcid, password = decoded.split(b"\x00")
    except (binascii.Error, ValueError):
        raise Bad("Invalid SASL PLAIN response") from None
    user = authcid.decode("utf-8", "replace")
    if authzid and authzid != authcid:
        raise No("Proxy authorization is not supported", "AUTHORIZATIONFAILED")
    return await _login(conn, user, password.decode("utf-8", "replace"))


async def _login(conn: Any, user: str, password: str) -> str:
    if not login_allowed(conn):
        raise No("Use STARTTLS first", "PRIVACYREQUIRED")
    metrics = conn.registry.metrics
    try:
        account = await conn.registry.authenticator.authenticate(user, password, conn.peer_ip)
    except LoginThrottled:
        metrics.logins.labels("imap", "throttled").inc()
        log.warn("imap_login_throttled user={user} ip={ip}", user=user[:200], ip=conn.peer_ip)
        raise No("Too many failed logins, try again later", "UNAVAILABLE") from None
    except LoginFailed:
        metrics.logins.labels("imap", "failed").inc()
        log.warn("imap_login_failed user={user} ip={ip}", user=user[:200], ip=conn.peer_ip)
        raise No("Authentication failed", "AUTHENTICATIONFAILED") from None
    metrics.logins.labels("imap", "ok").inc()
    log.info("imap_login user={user} ip={ip} tls={tls}", user=account.address, ip=conn.peer_ip, tls=conn.tls)
    await conn.factory.ensure_defaults(account.address)
    conn.login_done(account.address)
    return f"[CAPABILITY {capabilities(conn)}] Logged in"


@command("ID", ANY, SYNC_NONE)
async def do_id(conn: Any, tag: str, p: Parser) -> str:
    """RFC 2971: the client's fields are only checked for syntax."""
    if p.take(b"("):
        count = 0
        while not p.take(b")"):
            if count:
                p.sp()
            p.string()
            p.sp()
            p.nstring()
            count += 1
            if count > 30:
                raise ParseError("too many ID fields")
    elif p.keyword() != "NIL":
        raise ParseError("expected list or NIL")
    p.end()
    fields = " ".join(f"{quote(k)} {quote(v)}" for k, v in SERVER_ID.items())
    conn.untagged(f"ID ({fields})")
    return "ID completed"


@command("ENABLE", AUTHED, SYNC_NONE)
async def do_enable(conn: Any, tag: str, p: Parser) -> str:
    """RFC 5161: CONDSTORE and QRESYNC (RFC 7162 §3.1, §3.2.3), UTF8=ACCEPT and IMAP4rev2 (``rev2.py``)."""
    enabled = []
    while True:
        cap = p.keyword()
        if cap == "CONDSTORE" and not conn.condstore:
            conn.condstore = True
            enabled.append(cap)
        elif cap == "QRESYNC" and qresync.enable(conn):
            enabled.append(cap)
        elif cap in rev2.ENABLEABLE_UPPER and rev2.enable(conn, cap):
            enabled.append(rev2.enabled_name(cap))
        if not p.take(b" "):
            break
    p.end()
    conn.untagged("ENABLED" + "".join(" " + c for c in enabled))
    return "Enabled"


@command("NAMESPACE", AUTHED, SYNC_NONE)
async def do_namespace(conn: Any, tag: str, p: Parser) -> str:
    """RFC 2342: one personal namespace; no other users' or shared folders exist here."""
    p.end()
    conn.untagged('NAMESPACE (("" "/")) NIL NIL')
    return "Namespace completed"
