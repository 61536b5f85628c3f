"""addressbook-query text-match on sealed index values (issue 16): the keyed token index narrows
a contains / starts-with / ends-with search to candidates, decrypting verifies them, and the
results are those of matching every value: substrings inside words, across words, any case."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import defer

from tau.atrest.convert import Converter, pending_total
from tau.atrest.keyring import UserKey
from tests.support.contacts import vcard3, vcard4

PEOPLE = {"anna": "Anna 00100 Müller", "ben": "Ben 00200 Schmidt", "clara": "Clara 01350 Weber"}


def _fill(book: Any) -> None:
    for uid, fn in PEOPLE.items():
        book.put(f"contacts/{uid}.vcf", vcard3(uid, fn, f"{uid}@example{len(uid)}.org"))


def _names(book: Any, prop: str, text: str, how: str = "contains", negate: str = "no") -> list[str]:
    from tests.contacts.test_carddav_protocol import names, query

    return names(query(book, f'><C:prop-filter name="{prop}"><C:text-match match-type="{how}" '
                       f'negate-condition="{negate}">{text}</C:text-match></C:prop-filter>'))


def _opened_index_values(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Contexts of the index values decrypted from now on."""
    seen: list[str] = []
    real = UserKey.open_text

    def counting(self: UserKey, context: str, sealed: Any) -> str:
        if context.startswith("ab_index|"):
            seen.append(context)
        return real(self, context, sealed)

    monkeypatch.setattr(UserKey, "open_text", counting)
    return seen


def test_contains_finds_any_substring_inside_and_across_words(book: Any) -> None:
    _fill(book)
    assert _names(book, "FN", "00 ") == ["anna.vcf", "ben.vcf"]       # ends a word, spans a space
    assert _names(book, "FN", "nna 0") == ["anna.vcf"]
    assert _names(book, "FN", "MÜLL") == ["anna.vcf"]                  # case-folded
    assert _names(book, "FN", "a 0") == ["anna.vcf", "clara.vcf"]
    assert _names(book, "FN", "1350") == ["clara.vcf"]
    assert _names(book, "FN", "xyz") == []
    assert _names(book, "EMAIL", "a@example3") == []
    assert _names(book, "EMAIL", "a@example4.") == ["anna.vcf"]
    assert _names(book, "EMAIL", "@EXAMPLE") == ["anna.vcf", "ben.vcf", "clara.vcf"]


def test_short_needles_starts_with_ends_with_and_negation_match_as_before(book: Any) -> None:
    _fill(book)
    assert _names(book, "FN", "w") == ["clara.vcf"]                    # too short for a piece: every value
    assert _names(book, "FN", "er") == ["anna.vcf", "clara.vcf"]
    assert _names(book, "FN", "cl", "starts-with") == ["clara.vcf"]
    assert _names(book, "FN", "la 0", "starts-with") == []
    assert _names(book, "FN", "dt", "ends-with") == ["ben.vcf"]
    assert _names(book, "FN", "t", "ends-with") == ["ben.vcf"]
    assert _names(book, "FN", "00 ", "contains", "yes") == ["clara.vcf"]
    assert _names(book, "FN", "anna 00100 müller", "equals") == ["anna.vcf"]
    assert _names(book, "UID", "ar") == ["clara.vcf"] and _names(book, "UID", "ben", "starts-with") == ["ben.vcf"]


def test_a_contains_search_decrypts_only_the_candidates(book: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(40):
        book.put(f"contacts/p{i}.vcf", vcard4(f"p{i}", f"Person {i:03d} Sample", f"p{i}@example.org"))
    opened = _opened_index_values(monkeypatch)
    assert _names(book, "FN", "n 017 s") == ["p17.vcf"]
    assert len(opened) == 1
    opened.clear()
    assert _names(book, "FN", "s") == sorted(f"p{i}.vcf" for i in range(40))  # one letter: every value
    assert len(opened) == 40


def test_cards_from_before_the_token_index_are_searched_then_given_tokens(
        book: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _fill(book)
    db = book.registry.db.sync

    def forget_tokens(txn: Any) -> None:
        txn.execute("DELETE FROM ab_tokens")
        txn.execute("UPDATE ab_cards SET tokens = 0")

    db.run("forget", forget_tokens)
    assert _names(book, "FN", "00 ") == ["anna.vcf", "ben.vcf"]
    assert db.run("pending", pending_total, book.registry.atrest_tables)["ab_tokens"] == 3
    done = defer.ensureDeferred(Converter(book.registry, book.registry.atrest_tables).run_once()).result
    assert done == {"ab_tokens": 3}
    assert db.run("pending", pending_total, book.registry.atrest_tables)["ab_tokens"] == 0
    opened = _opened_index_values(monkeypatch)
    assert _names(book, "FN", "00 ") == ["anna.vcf", "ben.vcf"]
    assert len(opened) == 2


def test_replacing_and_deleting_a_card_drop_its_tokens(book: Any) -> None:
    _fill(book)
    book.put("contacts/anna.vcf", vcard3("anna", "Anna Neumann"))
    assert _names(book, "FN", "müller") == [] and _names(book, "FN", "neuma") == ["anna.vcf"]
    assert book.dav("DELETE", "contacts/anna.vcf").status == 204
    assert _names(book, "FN", "neuma") == []
    rows = book.registry.db.sync.run("tokens", lambda txn: txn.scalar(
        "SELECT COUNT(*) FROM ab_tokens t LEFT JOIN ab_cards c ON c.id = t.card_id WHERE c.id IS NULL"))
    assert rows == 0
