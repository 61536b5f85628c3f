"""Reading the bodies of many messages at once (FETCH 1:200 BODY[], issue 15): one thread job per
batch, small messages read whole and kept in a bounded cache of recent bodies, bigger ones read
by range, every byte as stored; the cache never grows past its bound and forgets deleted blobs."""

from __future__ import annotations

import pytest

from tau.blobs.base import BlobNotFound
from tau.mail.store import MailStore
from tau.mail.store.body_cache import BodyCache
from tests.mail.test_store_messages import ALICE, box, raw_message
from tests.support.harness import add_user, resolve


def test_the_cache_keeps_recent_small_bodies_within_its_bound():
    cache = BodyCache(total_max=100, item_max=40)
    for i in range(10):
        cache.put(f"k{i}", bytes([i]) * 30)
    assert cache.size <= 100 and len(cache) == 3
    assert [cache.get(f"k{i}") is not None for i in range(10)] == [False] * 7 + [True] * 3
    assert cache.get("k7") == bytes([7]) * 30  # now the most recent: k8 goes first
    cache.put("k10", b"x" * 30)
    assert cache.get("k8") is None and cache.get("k7") is not None
    cache.put("big", b"x" * 41)  # over the item bound: never kept
    assert cache.get("big") is None
    cache.discard(["k7", "nope"])
    assert cache.get("k7") is None and cache.size == 60


@pytest.fixture
def store(registry):
    add_user(registry, ALICE)
    s = MailStore(registry)
    resolve(s.ensure_defaults(ALICE))
    return s


def _metas(store, raws):
    resolve(store.append_many(ALICE, "INBOX", [(raw, (), None) for raw in raws]))
    inbox = box(store).id
    return resolve(store.fetch(inbox, resolve(store.uids(inbox))))


def test_ranges_of_small_and_big_messages_come_back_exactly(store):
    raws = [raw_message(n=i, body=f"line {i}\r\n" * (1 + i * 40)) for i in range(12)]
    raws.append(raw_message(n=99, body="B" * 200_000))  # several blob chunks: read by range
    metas = _metas(store, raws)
    wanted = []
    for m in metas:
        wanted += [(m.blob_key, m.size, 0, m.size), (m.blob_key, m.size, 3, min(40, m.size)),
                   (m.blob_key, m.size, m.size, m.size)]
    wanted.append((metas[-1].blob_key, metas[-1].size, 70_000, 140_000))
    raw_of = {m.blob_key: raw for m, raw in zip(metas, raws, strict=True)}
    for _ in range(2):  # cold, then from the cache
        got = resolve(store.read_ranges(wanted))
        assert got == [raw_of[key][start:end] for key, _, start, end in wanted]
    cache = store._bodies.cache
    assert len(cache) == 12 and cache.get(metas[-1].blob_key) is None  # the big one is not kept


def test_reading_many_bodies_keeps_the_cache_bounded(store, monkeypatch):
    metas = _metas(store, [raw_message(n=i, body="x" * 3000) for i in range(60)])
    resolve(store.read_ranges([(metas[0].blob_key, metas[0].size, 0, 10)]))
    cache = store._bodies.cache
    monkeypatch.setattr(cache, "total_max", 10 * metas[0].size)
    got = resolve(store.read_ranges([(m.blob_key, m.size, 0, m.size) for m in metas]))
    assert len(got) == 60 and all(got)
    assert cache.size <= cache.total_max and len(cache) <= 10


def test_a_deleted_message_is_not_served_from_the_cache(store):
    metas = _metas(store, [raw_message(n=1), raw_message(n=2)])
    wanted = [(m.blob_key, m.size, 0, m.size) for m in metas]
    resolve(store.read_ranges(wanted))
    inbox = box(store).id
    resolve(store.store_flags(inbox, [1], "+", ["\\Deleted"]))
    resolve(store.expunge(inbox))
    assert resolve(store.purge_expunged(grace=-1)) == 1  # the last reference goes: blob deleted
    assert store._bodies.cache.get(metas[0].blob_key) is None
    with pytest.raises(BlobNotFound):
        resolve(store.read_ranges(wanted[:1]))
    assert resolve(store.read_ranges(wanted[1:])) == [raw_message(n=2)]
