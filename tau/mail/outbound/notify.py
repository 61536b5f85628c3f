"""Who gets which delivery status notification (RFC 3461 §4.1, §6.2), built by ``dsn.build``.

- Failed recipients are reported when their NOTIFY includes FAILURE (the default), delayed ones
  once, after ``[outbound] delay_warning``, when it includes DELAY (the default too: §4.1 lets
  the MTA choose, and a delay notice is what Postfix sends). NOTIFY=NEVER: no report at all.
- NOTIFY=SUCCESS: a recipient relayed to an MX that did not advertise DSN gets Action ``relayed``
  (§6.2.6; one that did took the parameters on and reports itself), one put into a local mailbox
  Action ``delivered`` (``delivered_report``, called by the SMTP delivery after its commit).
- RET=FULL returns the whole message (``message/rfc822``) when it is at most ``FULL_LIMIT``,
  otherwise (and with RET=HDRS, and by default) only its header. ENVID and each ORCPT appear as
  ``Original-Envelope-Id`` and ``Original-Recipient`` (RFC 3464 §2.2.1, §2.3.1).
- Nothing goes to the null reverse-path (RFC 5321 §4.5.5): a DSN is never answered with one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from tau.mail.outbound import dsn
from tau.mail.smtp.dsn_params import DsnRequest

if TYPE_CHECKING:
    from tau.registry import Registry

log = Logger()
FULL_LIMIT = 10 * 1024 * 1024        # RET=FULL above this returns the header only (RFC 3461 §4.3 allows it)
HEADER_READ = 65536                  # bytes read from the blob to find the header block
Entry = tuple[str, int, str, str]    # (recipient, code, text, remote MTA)


def select(request: DsnRequest, failed: Iterable[Entry], delayed: Iterable[Entry],
           relayed: Iterable[Entry]) -> tuple[list[Entry], dict[str, str]]:
    """The entries to report and the action of each, honouring every recipient's NOTIFY."""
    entries: list[Entry] = []
    actions: dict[str, str] = {}
    for kind, action, group in (("FAILURE", "failed", failed), ("DELAY", "delayed", delayed),
                                ("SUCCESS", "relayed", relayed)):
        for entry in group:
            if request.rcpt(entry[0]).wants(kind) and entry[0] not in actions:
                entries.append(entry)
                actions[entry[0]] = action
    return entries, actions


async def original(registry: Registry, request: DsnRequest, blob_key: str, size: int,
                   message: bytes | None) -> tuple[bytes, bool]:
    """(what the report returns of the message, it is the whole message)."""
    if request.ret == "FULL" and size <= FULL_LIMIT:
        return (message if message is not None else await registry.blobs.read(blob_key)), True
    return dsn.header_block(message if message is not None else await registry.blobs.read(blob_key, 0, HEADER_READ)), \
        False


async def build(registry: Registry, hostname: str, sender: str, request: DsnRequest, entries: list[Entry],
                actions: dict[str, str], blob_key: str, size: int, message: bytes | None, *,
                arrival: int | None, retry_until: int | None) -> bytes:
    returned, full = await original(registry, request, blob_key, size, message)
    orcpts = {r: o for r, *_ in entries if (o := request.rcpt(r).orcpt)}
    main = next(a for a in ("failed", "delayed", "relayed", "delivered") if a in actions.values())
    return dsn.build(hostname, sender, entries, returned, action=main, arrival=arrival, retry_until=retry_until,
                     now=registry.clock.seconds(), actions=actions, envid=request.envid, orcpts=orcpts, full=full)


async def delivered_report(registry: Registry, store: Any, sender: str, request: DsnRequest, local: list[str],
                           blob_key: str, size: int, arrival: int) -> None:
    """Action ``delivered`` to ``sender`` for the local recipients that asked for NOTIFY=SUCCESS."""
    from tau.mail.outbound.recorder import deliver_report
    from tau.mail.store.fields import prepare

    entries: list[Entry] = [(r, 0, "", "") for r in local if request.rcpt(r).wants("SUCCESS")]
    if not entries or not sender:
        return
    raw = await build(registry, registry.config.tau.hostname, sender, request, entries,
                      {r: "delivered" for r, *_ in entries}, blob_key, size, None, arrival=arrival, retry_until=None)
    info = await registry.blobs.put(raw)
    try:
        fields = await registry.run_in_thread(prepare, None, raw)
        await registry.db.run("smtp_success_dsn", deliver_report, store.ctx, sender, info.key, info.size, fields)
    finally:                                  # collected only if nothing took it
        await store.discard_blob(info.key)
