"""addressbook-query filters (RFC 6352 §10.5) and the REST ``?q=`` search.

A filter on the indexed properties (FN, EMAIL, TEL, NICKNAME, UID) with the case-insensitive
collations is answered from ``ab_index`` (one query per text-match, set algebra for
anyof/allof); anything else (other properties, param-filters, ``i;octet``) is evaluated on
the parsed cards in a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tau.contacts import cardstore, vcard
from tau.contacts.cardstore import CardRow
from tau.contacts.vcard import INDEXED, Card, InvalidCard

if TYPE_CHECKING:
    from tau.contacts.domain import Contacts
    from tau.contacts.store import BookRow

NS = "{urn:ietf:params:xml:ns:carddav}"
COLLATIONS = ("i;unicode-casemap", "i;ascii-casemap", "i;octet")
MATCH_TYPES = ("equals", "contains", "starts-with", "ends-with")


class FilterError(Exception):
    def __init__(self, condition: str, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.condition, self.message, self.status = condition, message, status


@dataclass
class TextMatch:
    value: str
    match_type: str = "contains"
    collation: str = "i;unicode-casemap"
    negate: bool = False

    def test(self, text: str) -> bool:
        a, b = (text, self.value) if self.collation == "i;octet" else (text.lower(), self.value.lower())
        hit = {"equals": a == b, "contains": b in a, "starts-with": a.startswith(b),
               "ends-with": a.endswith(b)}[self.match_type]
        return hit != self.negate


@dataclass
class ParamFilter:
    name: str
    undefined: bool = False
    text: TextMatch | None = None


@dataclass
class PropFilter:
    name: str
    allof: bool = False
    undefined: bool = False
    texts: list[TextMatch] = field(default_factory=list)
    params: list[ParamFilter] = field(default_factory=list)

    @property
    def indexed(self) -> bool:
        return self.name in INDEXED and not self.params and all(t.collation != "i;octet" for t in self.texts)


@dataclass
class Filter:
    allof: bool = False
    props: list[PropFilter] = field(default_factory=list)


def _text_match(elem: Any) -> TextMatch:
    collation = elem.get("collation", "i;unicode-casemap")
    if collation not in COLLATIONS:
        raise FilterError("supported-collation", f"collation {collation} is not supported")
    match_type = elem.get("match-type", "contains")
    if match_type not in MATCH_TYPES:
        raise FilterError("supported-filter", f"match-type {match_type} is not supported", 400)
    return TextMatch(elem.text or "", match_type, collation, elem.get("negate-condition", "no") == "yes")


def _test(elem: Any) -> bool:
    test = str(elem.get("test", "anyof"))
    if test not in ("anyof", "allof"):
        raise FilterError("supported-filter", "test is anyof or allof", 400)
    return test == "allof"


def parse_filter(elem: Any) -> Filter:
    if elem is None:
        return Filter()
    out = Filter(_test(elem))
    for pf in elem:
        if pf.tag != NS + "prop-filter" or not pf.get("name"):
            raise FilterError("supported-filter", "a filter holds prop-filter elements with a name", 400)
        prop = PropFilter(pf.get("name").upper().rsplit(".", 1)[-1], _test(pf))
        for child in pf:
            if child.tag == NS + "is-not-defined":
                prop.undefined = True
            elif child.tag == NS + "text-match":
                prop.texts.append(_text_match(child))
            elif child.tag == NS + "param-filter":
                text = child.find(NS + "text-match")
                prop.params.append(ParamFilter((child.get("name") or "").upper(),
                                               child.find(NS + "is-not-defined") is not None,
                                               _text_match(text) if text is not None else None))
        out.props.append(prop)
    return out


def _combine(sets: list[set[int]], allof: bool, everything: set[int]) -> set[int]:
    if not sets:
        return set(everything)
    out = set(sets[0])
    for s in sets[1:]:
        out = out & s if allof else out | s
    return out


def _sql_ids(txn: Any, book_id: int, f: Filter) -> set[int]:
    everything = cardstore.all_ids(txn, book_id)
    sets = []
    for p in f.props:
        if p.undefined:
            sets.append(everything - cardstore.having(txn, book_id, p.name))
        elif not p.texts:
            sets.append(cardstore.having(txn, book_id, p.name))
        else:
            hits = [cardstore.match(txn, [book_id], p.name, t.value, t.match_type, t.negate) for t in p.texts]
            sets.append(_combine(hits, p.allof, everything))
    return _combine(sets, f.allof, everything)


def _param_ok(pf: ParamFilter, line: vcard.Line) -> bool:
    values = line.params.get(pf.name)
    if pf.name == "TYPE":
        values = line.types() or values
    if pf.undefined:
        return values is None
    if values is None:
        return False
    return pf.text is None or any(pf.text.test(v) for v in values)


def _prop_ok(p: PropFilter, card: Card) -> bool:
    lines = card.all(p.name)
    if p.undefined:
        return not lines
    if not lines:
        return False
    if not p.texts and not p.params:
        return True
    for line in lines:
        results = [t.test(line.text()) for t in p.texts] + [_param_ok(pf, line) for pf in p.params]
        if (all(results) if p.allof else any(results)):
            return True
    return False


def matches(f: Filter, row: CardRow) -> bool:
    try:
        card = vcard.parse(row.data or "", row.uid)
    except InvalidCard:
        return False
    results = [_prop_ok(p, card) for p in f.props]
    return True if not results else (all(results) if f.allof else any(results))


def _evaluate(f: Filter, rows: list[CardRow]) -> list[CardRow]:
    return [r for r in rows if matches(f, r)]


async def query(contacts: Contacts, book: BookRow, f: Filter) -> list[CardRow]:
    """The cards of ``book`` matching ``f``, by name."""
    if all(p.indexed for p in f.props):
        def txn_fn(txn: Any) -> list[CardRow]:
            return cardstore.with_ids(txn, sorted(_sql_ids(txn, book.id, f)))

        rows = await contacts.run("ab_query", txn_fn, readonly=True)
    else:
        rows = await contacts.registry.run_in_thread(_evaluate, f, await contacts.members(book, with_data=True))
    return sorted(rows, key=lambda r: r.name)


def text_search(q: str) -> Filter:
    """REST ``?q=``: any indexed property containing ``q``."""
    return Filter(False, [PropFilter(name, texts=[TextMatch(q)]) for name in ("FN", "EMAIL", "TEL", "NICKNAME")])
