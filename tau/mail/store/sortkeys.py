"""Per-content SORT and THREAD keys (RFC 5256, RFC 5957), computed once per message at delivery.

* ``subject``: the base subject of RFC 5256 §2.1 (white space collapsed, ``Re:``/``Fwd:``
  leaders, ``[blob]`` prefixes, ``(fwd)`` trailers and ``[fwd: ...]`` wrappers removed),
  casefolded; ``reply`` says whether a reply/forward marker was removed (THREAD=REFERENCES step 5).
* ``from_mbox``/``to_mbox``/``cc_mbox``: the addr-mailbox (local part) of the first address of the
  field, casefolded (RFC 5256 §3 FROM/TO/CC); empty when there is none.
* ``display_from``/``display_to``: the display name of the first address, or its addr-spec when it
  has none (RFC 5957), casefolded.

"Casefolded" here is the comparator i;ascii-casemap extended to Unicode: casefold, then upper
case, so keys compare as Dovecot's do (``_``, ``[`` sort after the letters, not before). The first
address of a group (``To: team: a@x, b@y;``) is the group's name, as in the IMAP ENVELOPE
(RFC 3501 §7.4.2: a group start is an address whose mailbox is the group name).
* ``message_id`` and ``refs``: the ``<msg-id>`` of Message-ID and the parents to thread under —
  the References msg-ids, or the first In-Reply-To msg-id when References has none (RFC 5256 §2.2).

Keys are stored sealed per user and content (``mail_content.sort``, see ``sealed``); rows from
before encryption at rest get them from the old ``message_sort_keys`` row or their ``parsed`` JSON
when the at-rest converter seals them (``atrest_mail``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import getaddresses
from typing import Any

from tau.mail.mime import ParsedMessage
from tau.mail.mime.parse import from_json
from tau.mail.store.cleaning import clean

#: the newest parents kept per message (RFC 5256 only needs the chain; mailing lists grow long ones)
MAX_REFS = 64
MAX_KEY = 1000
_BLOB = r"\[[^\[\]]*\][ \t]*"
_LEADER = re.compile(rf"(?:{_BLOB})*(?:re|fwd?)[ \t]*(?:{_BLOB})?:", re.IGNORECASE)
_LEADING_BLOB = re.compile(_BLOB)
_MSG_ID = re.compile(r"<[^<>\s]+>")
_GROUP = re.compile(r'\s*([^:<>",@\s][^:<>",@]*?)\s*:')
COLUMNS = ("subject", "reply", "from_mbox", "to_mbox", "cc_mbox", "display_from", "display_to",
           "message_id", "refs")


@dataclass(frozen=True)
class SortKeys:
    subject: str
    reply: bool
    from_mbox: str
    to_mbox: str
    cc_mbox: str
    display_from: str
    display_to: str
    message_id: str
    refs: str  # space-separated msg-ids, oldest first

    def row(self, key: str) -> tuple[Any, ...]:
        return (key, self.subject, int(self.reply), self.from_mbox, self.to_mbox, self.cc_mbox,
                self.display_from, self.display_to, self.message_id, self.refs)


def _strip_trailers(s: str) -> tuple[str, bool]:
    """Step 2: remove trailing white space and ``(fwd)``."""
    removed = False
    while True:
        if s[-1:] in (" ", "\t"):
            s = s[:-1]
        elif s[-5:].lower() == "(fwd)":
            s, removed = s[:-5], True
        else:
            return s, removed


def _strip_leaders(s: str) -> tuple[str, bool]:
    """Steps 3 and 4: remove leading white space, ``Re:``-style leaders and ``[blob]`` prefixes
    (a blob only when something is left after it)."""
    removed = False
    while True:
        if s[:1] in (" ", "\t"):
            s = s.lstrip(" \t")
            continue
        m = _LEADER.match(s)
        if m:
            s, removed = s[m.end():], True
            continue
        m = _LEADING_BLOB.match(s)
        if m and s[m.end():]:
            s = s[m.end():]
            continue
        return s, removed


def base_subject(subject: str | None) -> tuple[str, bool]:
    """(base subject, was a reply or forward) per RFC 5256 §2.1, casefolded."""
    s = " ".join(clean(subject).split())
    reply = False
    while True:
        s, r2 = _strip_trailers(s)
        s, r3 = _strip_leaders(s)
        reply = reply or r2 or r3
        if s[:5].lower() == "[fwd:" and s.endswith("]"):  # step 5, then back to step 2
            s, reply = s[5:-1], True
            continue
        return fold(s), reply


def fold(text: str) -> str:
    """The comparable form of a key (see the module docstring)."""
    return text.casefold().upper()[:MAX_KEY]


def _first_address(parsed: ParsedMessage, name: str) -> tuple[str, str]:
    """(display name, addr-spec) of the first address in header ``name``; a group's name for both
    when the field starts with a group."""
    values = [v for n, v in parsed.headers if n.lower() == name]
    group = _GROUP.match(values[0]) if values else None
    if group:
        return group.group(1), group.group(1)
    for display, spec in getaddresses(values):
        if spec or display:
            return display.strip(), spec.strip()
    return "", ""


def _mailbox_key(spec: str) -> str:
    return fold(clean(spec.rpartition("@")[0] if "@" in spec else spec))


def _header(parsed: ParsedMessage, name: str) -> str:
    return " ".join(v for n, v in parsed.headers if n.lower() == name)


def keys_of(parsed: ParsedMessage) -> SortKeys:
    """The SORT/THREAD keys of one parsed message."""
    subject, reply = base_subject(parsed.subject)
    addresses = {name: _first_address(parsed, name) for name in ("from", "to", "cc")}
    ids = _MSG_ID.findall(parsed.message_id or _header(parsed, "message-id"))
    refs = _MSG_ID.findall(_header(parsed, "references"))
    if not refs:
        refs = _MSG_ID.findall(parsed.in_reply_to or _header(parsed, "in-reply-to"))[:1]
    return SortKeys(
        subject=subject, reply=reply,
        from_mbox=_mailbox_key(addresses["from"][1]),
        to_mbox=_mailbox_key(addresses["to"][1]),
        cc_mbox=_mailbox_key(addresses["cc"][1]),
        display_from=fold(clean(addresses["from"][0] or addresses["from"][1])),
        display_to=fold(clean(addresses["to"][0] or addresses["to"][1])),
        message_id=clean(ids[0])[:MAX_KEY] if ids else "",
        refs=clean(" ".join(r[:MAX_KEY] for r in refs[-MAX_REFS:])),
    )


def keys_of_json(parsed_json: str) -> SortKeys:
    """Keys from a stored ``messages.parsed`` value (rows delivered before the keys table)."""
    return keys_of(from_json(parsed_json))
