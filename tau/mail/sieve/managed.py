"""The tau-managed section of a user's active Sieve script: REST filters and vacation as Sieve.

The section sits at the top of the active script between two comment markers, with the JSON it was
made from on a comment line (so ``GET`` reads back what ``PUT`` stored); the rest of the script is
the user's own (Thunderbird's or Roundcube's editors see and keep both). ``require`` lines of the
whole script are merged into one before the section (RFC 5228 §3.2: require comes first).
"""

from __future__ import annotations

import json
import re
from typing import Any

BEGIN = "# tau-managed: begin (set with PUT /api/filters and /api/vacation; edit below the end marker)"
END = "# tau-managed: end"
SETTINGS = "# tau-settings: "
HEADERS = ("subject", "from", "to", "cc", "list-id", "reply-to", "sender")
_REQUIRE = re.compile(r'^\s*require\s+(\[[^\]]*\]|"[^"]*")\s*;[ \t]*\r?\n?', re.M)


class FilterError(ValueError):
    pass


def sieve_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def split(script: str) -> tuple[set[str], dict[str, Any], str]:
    """(extensions required anywhere, the managed settings, the user's own part)."""
    settings: dict[str, Any] = {}
    start, end = script.find(BEGIN), script.find(END)
    if start >= 0 and end > start:
        section = script[start:end]
        for line in section.splitlines():
            if line.startswith(SETTINGS):
                try:
                    settings = json.loads(line[len(SETTINGS):])
                except ValueError:
                    settings = {}
        script = script[:start] + script[end + len(END):].lstrip("\r\n")
    required: set[str] = set()
    for match in _REQUIRE.finditer(script):
        required |= set(re.findall(r'"([^"]*)"', match.group(1)))
    return required, settings, _REQUIRE.sub("", script).lstrip("\r\n")


def _filter(rule: Any) -> tuple[str, set[str]]:
    if not isinstance(rule, dict) or not isinstance(rule.get("if"), dict) or not isinstance(rule.get("then"), dict):
        raise FilterError('each filter is {"if": {"header": ..., "contains": ...}, "then": {...}}')
    cond, then = rule["if"], rule["then"]
    header = cond.get("header")
    if header not in HEADERS:
        raise FilterError(f"if.header must be one of {', '.join(HEADERS)}")
    how = "contains" if "contains" in cond else "is" if "is" in cond else None
    if how is None or not isinstance(cond[how], str) or not cond[how]:
        raise FilterError('if needs "contains" or "is" with a non-empty string')
    test = f"header :{how} {sieve_string(header)} {sieve_string(cond[how])}"
    if isinstance(then.get("fileinto"), str) and then["fileinto"].strip():
        return f"if {test} {{\n    fileinto {sieve_string(then['fileinto'].strip())};\n    stop;\n}}\n", {"fileinto"}
    if isinstance(then.get("flag"), str) and then["flag"].strip():
        return f"if {test} {{\n    addflag {sieve_string(then['flag'].strip())};\n}}\n", {"imap4flags"}
    if then.get("discard") is True:
        return f"if {test} {{\n    discard;\n    stop;\n}}\n", set()
    raise FilterError('then is {"fileinto": mailbox}, {"flag": flag} or {"discard": true}')


def _vacation(v: dict[str, Any]) -> tuple[str, set[str]]:
    if not v.get("enabled"):
        return "", set()
    args = "" if v.get("days") is None else f" :days {int(v['days'])}"
    if v.get("subject"):
        args += f" :subject {sieve_string(v['subject'])}"
    if v.get("from"):
        args += f" :from {sieve_string(v['from'])}"
    action = f"vacation{args} {sieve_string(v.get('text') or '')};\n"
    if v.get("until"):
        return (f"if currentdate :value \"le\" \"date\" {sieve_string(v['until'][:10])} {{\n    {action}}}\n",
                {"vacation", "date", "relational"})
    return action, {"vacation"}


def check_vacation(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("enabled"), bool):
        raise FilterError('vacation is {"enabled": bool, "subject", "text", "from"?, "until"?}')
    out: dict[str, Any] = {"enabled": body["enabled"]}
    for key in ("subject", "text", "from", "until"):
        value = body.get(key)
        if value is not None and not isinstance(value, str):
            raise FilterError(f"{key} must be a string")
        out[key] = value
    if out["until"] and not re.fullmatch(r"\d{4}-\d{2}-\d{2}(T.*)?", out["until"]):
        raise FilterError("until is a date, YYYY-MM-DD")
    if isinstance(body.get("days"), int) and 1 <= body["days"] <= 90:
        out["days"] = body["days"]
    return out


def compose(script: str, settings: dict[str, Any]) -> str:
    """``script`` with its managed section made from ``settings`` ({"filters": [...], "vacation": {...}})."""
    required, _, rest = split(script)
    body, needs = [], set()
    for rule in settings.get("filters") or []:
        text, extra = _filter(rule)
        body.append(text)
        needs |= extra
    text, extra = _vacation(settings.get("vacation") or {})
    body.append(text)
    needs |= extra
    required |= needs
    head = f"require [{', '.join(sieve_string(r) for r in sorted(required))}];\n" if required else ""
    section = f"{BEGIN}\n{SETTINGS}{json.dumps(settings, separators=(',', ':'))}\n{''.join(body)}{END}\n"
    return head + section + rest
