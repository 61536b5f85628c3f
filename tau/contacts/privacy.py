"""The user's address books in a privacy export (one ``.vcf`` per book, the cards as stored);
erasure deletes books, cards, their index and settings. See :mod:`tau.privacy`."""

from __future__ import annotations

from typing import Any

from tau.auth.accounts import User
from tau.contacts import privacy_store as rows
from tau.privacy import ExportContext, PrivacyHook, PurgeContext, safe_name


def merge_vcf(cards: list[str]) -> str:
    """A .vcf file is vCards one after another (RFC 6350 §3.1)."""
    return "".join(c if c.endswith("\n") else c + "\r\n" for c in cards)


def export(ctx: ExportContext) -> None:
    ctx.counts.update(addressbooks=0, contacts=0)
    for book_id, name in ctx.db.run("ab_books", rows.books, ctx.user.id, readonly=True):
        cards = ctx.db.run("ab_cards", rows.cards, book_id, readonly=True)
        ctx.add_bytes(f"contacts/{safe_name(name)}.vcf", merge_vcf(cards).encode("utf-8"))
        ctx.counts["addressbooks"] += 1
        ctx.counts["contacts"] += len(cards)


def purge(txn: Any, user: User) -> int:
    return rows.purge(txn, user.id)


def collect(ctx: PurgeContext, state: Any) -> None:
    ctx.counts["contacts"] = int(state or 0)


HOOK = PrivacyHook("contacts", export=export, purge=purge, collect=collect)
