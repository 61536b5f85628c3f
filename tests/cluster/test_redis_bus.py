"""``RedisBus``: local delivery at once, echo ignored, JSON on the wire, degraded health while Redis
is down, and (against a private ``redis-server``) delivery across buses surviving a Redis restart."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from twisted.internet.testing import MemoryReactorClock

from tau.bus import events
from tau.bus.redis import RedisBus, encode
from tau.config import ConfigError, load_config
from tests.support.cluster import RedisServer


def _bus(url: str = "redis://127.0.0.1:6379/7") -> RedisBus:
    return RedisBus(url, MemoryReactorClock(), node_id="me")


def test_publish_delivers_locally_at_once_even_with_redis_down() -> None:
    bus = _bus()
    seen: list[tuple[str, dict]] = []
    bus.subscribe("mailbox.changed", lambda t, e: seen.append((t, e)))
    bus.subscribe("message.*", lambda t, e: seen.append((t, e)))
    bus.publish("mailbox.changed", {"user": "a@example.test", "uids": [1]})
    bus.publish("message.created", {"n": 1})
    assert seen == [("mailbox.changed", {"user": "a@example.test", "uids": [1]}), ("message.created", {"n": 1})]
    assert bus.dropped == 2  # not connected: the remote copies are dropped, not queued
    assert bus.health().startswith("degraded")


def test_events_from_other_nodes_are_delivered_and_our_echo_is_not() -> None:
    bus = _bus()
    seen: list[tuple[str, dict]] = []
    bus.subscribe("presence.*", lambda t, e: seen.append((t, e)))
    bus._received(encode("other", "presence.changed", {"user": "b@example.test", "status": "away"}).encode())
    bus._received(encode("me", "presence.changed", {"user": "echo"}))
    bus._received(b"not json")
    bus._received(json.dumps({"n": "x"}))
    assert seen == [("presence.changed", {"user": "b@example.test", "status": "away"})]


def test_channel_prefix_is_scoped_by_database_number() -> None:
    assert _bus("redis://127.0.0.1:6379/7").prefix != _bus("redis://127.0.0.1:6379/8").prefix


def test_wire_format_handles_times_tuples_and_bytes() -> None:
    import datetime

    data = json.loads(encode("n", "call.updated", {"at": datetime.datetime(2026, 1, 2, 3, 4, 5),
                                                   "deliveries": [("a", 1, None)], "b": b"\x00\x01"}))
    assert data["e"] == {"at": "2026-01-02T03:04:05", "deliveries": [["a", 1, None]], "b": "AAE="}


def test_typed_topics_refuse_typos() -> None:
    bus = _bus()
    events.publish(bus, events.CALENDAR_CHANGED, events.calendar_changed("a@x", "cal", "uid", "put"))
    with pytest.raises(ValueError):
        events.publish(bus, "calender.changed", {})
    assert events.family(events.SIGNAL_FRAME) == "signal.*"


def test_sqlite_with_redis_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    ini = tmp_path / "tau.ini"
    ini.write_text(f"[tau]\nhostname = h.test\ndata_dir = {tmp_path}\n[database]\nurl = sqlite:///{tmp_path}/t.db\n")
    with pytest.raises(ConfigError) as err:
        load_config(str(ini), {"TAU_REDIS_URL": "redis://127.0.0.1:6379/0"})
    assert "SQLite serves one node only" in str(err.value) and "redis" in str(err.value)


SCRIPT = textwrap.dedent("""
    import json, subprocess, sys
    from twisted.internet import reactor, task
    from tau.bus.redis import RedisBus
    url, port = sys.argv[1], sys.argv[2]
    a, b = RedisBus(url, reactor, "a"), RedisBus(url, reactor, "b")
    got, log = [], []
    b.subscribe("message.*", lambda t, e: got.append(e["n"]))
    a.subscribe("message.*", lambda t, e: None)
    def restart():
        subprocess.run(["redis-cli", "-p", port, "shutdown", "nosave"], capture_output=True)
    def start():
        subprocess.Popen(["redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    async def main():
        a.start(); b.start()
        for _ in range(100):
            if a.connected and b.connected: break
            await task.deferLater(reactor, 0.05, lambda: None)
        log.append(("up", a.health(), b.health()))
        for n in range(5): a.publish("message.created", {"n": n})
        await task.deferLater(reactor, 0.3, lambda: None)
        restart()
        await task.deferLater(reactor, 0.5, lambda: None)
        log.append(("down", a.health(), b.health()))
        a.publish("message.created", {"n": 99})  # dropped, no crash
        start()
        for _ in range(200):
            if a.connected and b.connected: break
            await task.deferLater(reactor, 0.05, lambda: None)
        log.append(("back", a.health(), b.health()))
        for n in range(5, 10): a.publish("message.created", {"n": n})
        await task.deferLater(reactor, 0.3, lambda: None)
        print(json.dumps({"got": got, "log": log, "dropped": a.dropped}))
        await a.stop(); await b.stop()
    task.react(lambda r: __import__("twisted.internet.defer").internet.defer.ensureDeferred(main()))
""")


@pytest.mark.skipif(not RedisServer.available(), reason="redis-server not installed")
def test_two_buses_through_redis_survive_a_restart() -> None:
    redis = RedisServer().start()
    try:
        out = subprocess.run([sys.executable, "-c", SCRIPT, redis.url(5), str(redis.port)], capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr[-3000:]
        result = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        subprocess.run(["redis-cli", "-p", str(redis.port), "shutdown", "nosave"], capture_output=True)
        redis.stop()
    assert result["log"][0] == ["up", "ok", "ok"]
    assert result["log"][1][1].startswith("degraded") and result["log"][1][2].startswith("degraded")
    assert result["log"][2] == ["back", "ok", "ok"]
    assert result["got"] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]  # 99 was published while down: dropped
    assert result["dropped"] >= 1
