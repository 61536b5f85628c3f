"""Back-pressure and big messages: slow blob writes pause reading; the 250 waits for durability;
messages above the in-memory limit are parsed from the blob in a worker thread."""

from __future__ import annotations

import os

import pytest
from twisted.internet import defer

import tau.mail.smtp.message as message_module
from tests.support.harness import add_user, immediate, resolve
from tests.support.smtp import Client, mail_store, mailbox_messages, make_factory, strip_trace


class ManualThreads:
    """``run_in_thread`` whose jobs wait until the test runs them: a slow disk on demand."""

    def __init__(self) -> None:
        self.jobs: list[tuple[defer.Deferred, object, tuple, dict]] = []
        self.names: list[str] = []

    def __call__(self, fn, *args, **kwargs) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        self.jobs.append((d, fn, args, kwargs))
        self.names.append(getattr(fn, "__name__", repr(fn)))
        return d

    def run_all(self) -> int:
        ran = 0
        while self.jobs:
            d, fn, args, kwargs = self.jobs.pop(0)
            defer.maybeDeferred(fn, *args, **kwargs).chainDeferred(d)
            ran += 1
        return ran


@pytest.fixture
def store(registry):
    add_user(registry, "alice@example.test")
    return mail_store(registry)


def big_body(lines: int) -> bytes:
    return b"Subject: big one\r\nFrom: x@remote.test\r\n\r\n" + b"".join(
        b"%07d " % i + b"b" * 70 + b"\r\n" for i in range(lines))


def test_slow_blob_writes_pause_reading_and_delay_the_250(registry, store, monkeypatch):
    monkeypatch.setattr(message_module, "HOLD_LIMIT", 50_000)  # above it the message streams to the blob
    threads = ManualThreads()
    registry._run_in_thread = threads            # the blob store and parsing now wait for us
    c = Client(make_factory(registry, store, "smtp"))
    c.ehlo()
    c.send(b"MAIL FROM:<x@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
    body = big_body(12_000)                      # ~950 KB: many blob chunks
    data = body + b".\r\nNOOP\r\n"
    for pos in range(0, len(data), 65536):       # as the network delivers it
        assert c.send(data[pos:pos + 65536]) == []   # nothing answered while the disk is "busy"
    assert c.transport.producerState == "paused"  # and we stopped reading from the socket
    assert len(c.protocol._inbuf) > 256 * 1024
    assert threads.jobs
    for _ in range(100):
        if not threads.run_all():
            break
    replies = c.read()
    assert [r.code for r in replies] == [250, 250]   # the message, then the pipelined NOOP
    assert c.transport.producerState == "producing"
    registry._run_in_thread = immediate
    assert strip_trace(mailbox_messages(store, "alice@example.test")[0]) == body


def test_disconnect_while_a_chunk_is_being_written(registry, store, monkeypatch):
    monkeypatch.setattr(message_module, "HOLD_LIMIT", 50_000)
    threads = ManualThreads()
    registry._run_in_thread = threads
    c = Client(make_factory(registry, store, "smtp"))
    c.ehlo()
    c.send(b"MAIL FROM:<x@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
    c.send(big_body(3_000))
    c.disconnect()
    for _ in range(100):
        if not threads.run_all():
            break
    assert os.listdir(registry.blob_backend.tmp) == []
    registry._run_in_thread = immediate
    assert mailbox_messages(store, "alice@example.test") == []


def test_message_above_the_memory_limit_is_parsed_from_the_blob(registry, store, monkeypatch):
    monkeypatch.setattr(message_module, "HOLD_LIMIT", 50_000)
    c = Client(make_factory(registry, store, "smtp"))
    c.ehlo()
    body = big_body(2_000)
    replies = c.mail("x@remote.test", ["alice@example.test"], body)
    assert replies[-1].code == 250
    info = resolve(store.get_mailbox("alice@example.test", "INBOX"))
    [meta] = resolve(store.fetch(info.id, resolve(store.uids(info.id))))
    assert '"big one"' in meta.envelope and meta.size == len(mailbox_messages(store, "alice@example.test")[0])
