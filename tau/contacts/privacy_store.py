"""The address-book rows of one user, for a privacy export (:mod:`tau.contacts.privacy`)."""

from __future__ import annotations

from tau.contacts import cardstore
from tau.storage.database import Txn


def books(txn: Txn, user_id: int) -> list[tuple[int, str]]:
    """(id, name) of every address book of the user, by name."""
    return [(int(r[0]), r[1]) for r in txn.query("SELECT id, name FROM ab_books WHERE user_id = ? ORDER BY name",
                                                 (user_id,))]


def cards(txn: Txn, book_id: int) -> list[str]:
    """The vCard text of every card in the book, oldest first."""
    return [cardstore.open_data(txn, book_id, r[0], r[1], r[2]) for r in txn.query(
        "SELECT name, data, data_s FROM ab_cards WHERE book_id = ? ORDER BY id", (book_id,))]


def purge(txn: Txn, user_id: int) -> int:
    """Index rows are not tied to the account by a foreign key of their own: delete them first."""
    ids = [int(r[0]) for r in txn.query("SELECT id FROM ab_books WHERE user_id = ?", (user_id,))]
    count = 0
    for book_id in ids:
        count += int(txn.scalar("SELECT COUNT(*) FROM ab_cards WHERE book_id = ?", (book_id,)) or 0)
        txn.execute("DELETE FROM ab_index WHERE book_id = ?", (book_id,))
        txn.execute("DELETE FROM ab_tokens WHERE book_id = ?", (book_id,))
        txn.execute("DELETE FROM ab_books WHERE id = ?", (book_id,))
    txn.execute("DELETE FROM ab_settings WHERE user_id = ?", (user_id,))
    return count
