"""Comparators and match types (RFC 5228 §2.7, RFC 5231 relational, RFC 4790 comparators).

``matches(values, keys, match)`` is true when any value matches any key; ``:matches`` also returns
the wildcard captures for ``${1}``… (RFC 5229 §3.2). Globs compile once per key.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

Match = tuple[str, str | None, str]     # (":is"|":contains"|":matches"|":count"|":value", relation, comparator)


def _fold(text: str, comparator: str) -> str:
    return text.lower() if comparator == "i;ascii-casemap" else text


def _numeric(text: str) -> float:
    """i;ascii-numeric: the leading digits; none is positive infinity (RFC 4790 §9.1.1)."""
    digits = re.match(r"[0-9]+", text)
    return int(digits.group(0)) if digits else float("inf")


@functools.lru_cache(maxsize=4096)
def glob(pattern: str, casefold: bool) -> re.Pattern[str]:
    """``*`` and ``?`` with ``\\`` escapes (RFC 5228 §2.7.1) as an anchored regex with groups."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append("(.*?)" if ch == "*" else "(.)" if ch == "?" else re.escape(ch))
        i += 1
    return re.compile("".join(out) + r"\Z", re.S | (re.I if casefold else 0))


def _relate(left: float | str, right: float | str, relation: str) -> bool:
    if relation == "gt":
        return left > right      # type: ignore[operator]
    if relation == "ge":
        return left >= right     # type: ignore[operator]
    if relation == "lt":
        return left < right      # type: ignore[operator]
    if relation == "le":
        return left <= right     # type: ignore[operator]
    if relation == "ne":
        return left != right
    return left == right


def _value(value: str, key: str, relation: str, comparator: str) -> bool:
    if comparator == "i;ascii-numeric":
        return _relate(_numeric(value), _numeric(key), relation)
    return _relate(_fold(value, comparator), _fold(key, comparator), relation)


def matches(values: Sequence[str], keys: Sequence[str], match: Match) -> tuple[bool, list[str] | None]:
    """(does any value match any key, the ``:matches`` captures: whole match first)."""
    kind, relation, comparator = match
    if kind == ":count":
        count = str(len(values))
        return any(_value(count, key, relation or "eq", "i;ascii-numeric") for key in keys), None
    for value in values:
        for key in keys:
            if kind == ":is":
                if comparator == "i;ascii-numeric":
                    ok = _numeric(value) == _numeric(key)
                else:
                    ok = _fold(value, comparator) == _fold(key, comparator)
                if ok:
                    return True, None
            elif kind == ":contains":
                if _fold(key, comparator) in _fold(value, comparator):
                    return True, None
            elif kind == ":matches":
                found = glob(key, comparator == "i;ascii-casemap").match(value)
                if found:
                    return True, [value, *found.groups()]
            elif kind == ":value" and _value(value, key, relation or "eq", comparator):
                return True, None
    return False, None
