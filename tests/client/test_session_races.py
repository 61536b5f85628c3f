"""Sessions that survive real conversations (issue 20): crossing sends, simultaneous starts,
offline devices, re-installs and state files reloaded between steps — seeded, deterministic.

Invariant of every run: each envelope the relay accepted is, for its recipient installation,
either decrypted exactly once to the right text, or reported undecryptable with a reason, or
was dropped by the server with a re-installed device's queue. Without re-installs nothing is
undecryptable; with them, only a re-installed device may meet a message it cannot read, and
a safety-number change is reported only for devices that really were re-installed.
"""

from __future__ import annotations

import base64
import json
import random
from collections import Counter

import pytest

from tau.client.device import DecryptError, DeviceState
from tests.client.relay import Relay

A, B = "gina@example.test", "hank@example.test"


def _fresh(relay: Relay, user: str, device: int) -> DeviceState:
    return relay.install(user, device).state


def _deliver(relay: Relay, user: str, device: int, count: int | None = None) -> list[tuple[str, bytes | str]]:
    inst = relay.devices[(user, device)]
    batch, inst.queue = inst.queue[:count], inst.queue[len(inst.queue[:count]):]
    out: list[tuple[str, bytes | str]] = []
    for msg_id, sender, sender_device, envelope in batch:
        try:
            out.append((msg_id, inst.state.decrypt(sender, sender_device, envelope)))
        except DecryptError as exc:
            out.append((msg_id, f"error: {exc}"))
    for peer, peer_device in inst.state.sessions_to_restart():
        inst.state.start_session(peer, relay.bundle(peer, peer_device))
    return out


def test_the_issue_20_crossing_sends_lose_nothing():
    """gina sends g1, hank reads it; gina sends g2; hank answers before reading g2."""
    relay = Relay(random.Random(20))
    gina, hank = _fresh(relay, A, 1), _fresh(relay, B, 2)
    relay.send(gina, [A, B], "g1", b"g1")
    assert _deliver(relay, B, 2) == [("g1", b"g1")]
    relay.send(gina, [A, B], "g2", b"g2")
    relay.send(hank, [A, B], "h1", b"h1")
    assert _deliver(relay, B, 2) == [("g2", b"g2")]
    assert _deliver(relay, A, 1) == [("h1", b"h1")]


def test_a_prekey_message_decrypts_with_an_archived_state():
    relay = Relay(random.Random(1))
    gina, hank = _fresh(relay, A, 1), _fresh(relay, B, 2)
    relay.send(gina, [A, B], "g1", b"g1")
    relay.send(gina, [A, B], "g2", b"g2")
    assert _deliver(relay, B, 2, 1) == [("g1", b"g1")]
    hank.start_session(A, relay.bundle(A, 1))  # hank starts over: gina's session is archived at hank
    assert _deliver(relay, B, 2) == [("g2", b"g2")]


def test_simultaneous_initiation_converges_on_one_session():
    relay = Relay(random.Random(2))
    gina, hank = _fresh(relay, A, 1), _fresh(relay, B, 2)
    relay.send(gina, [A, B], "g1", b"g1")
    relay.send(hank, [A, B], "h1", b"h1")
    assert _deliver(relay, B, 2) == [("g1", b"g1")]
    assert _deliver(relay, A, 1) == [("h1", b"h1")]
    mine, theirs = gina.store.current(f"{B}|2"), hank.store.current(f"{A}|1")
    assert mine is not None and theirs is not None
    assert mine["ad"] == theirs["ad"] and mine["ek"] == theirs["ek"]  # the same X3DH run on both sides
    for i in range(3):
        relay.send(gina, [A, B], f"g{i}", b"x")
        relay.send(hank, [A, B], f"h{i}", b"y")
    assert [m for m, _ in _deliver(relay, B, 2)] == ["g0", "g1", "g2"]
    assert [m for m, _ in _deliver(relay, A, 1)] == ["h0", "h1", "h2"]
    wire = json.loads(base64.b64decode(gina.encrypt(B, 2, b"z")))
    assert "x" not in wire and len(gina.store.records[f"{B}|2"]) == 2  # one current, one archived


def test_a_reinstalled_peer_is_a_safety_number_change_not_silent_trust():
    relay = Relay(random.Random(3))
    gina, _ = _fresh(relay, A, 1), _fresh(relay, B, 2)
    relay.send(gina, [A, B], "g1", b"g1")
    _deliver(relay, B, 2)
    before = gina.safety_number(B, 2)
    relay.send(relay.install(B, 2).state, [A, B], "h1", b"h1")  # hank re-installs and writes
    assert _deliver(relay, A, 1) == [("h1", b"h1")]
    [change] = gina.identity_changes()
    assert (change["user"], change["device_id"]) == (B, 2) and change["old"] != change["new"]
    assert gina.safety_number(B, 2) != before
    assert gina.identity_changes() == []  # reported once


def test_one_time_prekey_is_kept_when_the_initial_message_fails():
    relay = Relay(random.Random(4))
    gina, hank = _fresh(relay, A, 1), _fresh(relay, B, 2)
    relay.send(gina, [A, B], "g1", b"g1")
    inst = relay.devices[(B, 2)]
    msg_id, sender, dev, envelope = inst.queue.pop()
    wire = json.loads(base64.b64decode(envelope))
    wire["c"] = base64.b64encode(b"\0" * 40).decode()
    opk = wire["x"]["opk"]
    with pytest.raises(DecryptError):
        hank.decrypt(sender, dev, base64.b64encode(json.dumps(wire).encode()).decode())
    assert opk in hank.one_time
    assert hank.decrypt(sender, dev, envelope) == b"g1"
    assert opk not in hank.one_time


def _run(seed: int, steps: int, users: int, devices: int, reinstalls: bool) -> dict[str, int]:
    rng = random.Random(seed)
    relay = Relay(rng)
    names = [f"u{i}@example.test" for i in range(users)]
    for name in names:
        for dev in range(1, devices + 1):
            relay.install(name, dev)
    online = set(relay.devices)
    expected: dict[tuple[str, str, int, int], bytes] = {}
    outcomes: dict[tuple[str, str, int, int], list[bytes | str]] = {}
    reinstalled: Counter[tuple[str, int]] = Counter()
    changes: Counter[tuple[tuple[str, int], tuple[str, int]]] = Counter()  # (observer, changed device)
    for step in range(steps):
        roll, key = rng.random(), rng.choice(sorted(relay.devices))
        inst = relay.devices[key]
        if roll < 0.45 and key in online:
            members = [key[0], rng.choice([n for n in names if n != key[0]])] if rng.random() < 0.7 else names
            msg_id, text = f"m{step}", f"text {step} from {key}".encode()
            for user, dev in relay.send(inst.state, members, msg_id, text):
                expected[(msg_id, user, dev, relay.devices[(user, dev)].generation)] = text
        elif roll < 0.85 and key in online:
            for msg_id, result in _deliver(relay, *key, rng.randint(1, 4)):
                outcomes.setdefault((msg_id, *key, inst.generation), []).append(result)
            changes.update((key, (c["user"], c["device_id"])) for c in inst.state.identity_changes())
        elif roll < 0.95:
            online.symmetric_difference_update({key})
        elif roll < 0.97:
            inst.state = DeviceState.from_dict(json.loads(json.dumps(inst.state.to_dict())))  # a new process
        elif reinstalls and roll < 0.98:
            relay.install(*key)
            reinstalled[key] += 1
    for key in sorted(relay.devices):
        for msg_id, result in _deliver(relay, *key):
            outcomes.setdefault((msg_id, *key, relay.devices[key].generation), []).append(result)
        changes.update((key, (c["user"], c["device_id"])) for c in relay.devices[key].state.identity_changes())
    errors = 0
    for slot, text in expected.items():
        got = outcomes.get(slot, [])
        if slot in relay.wiped:
            assert got == [], slot
            continue
        assert len(got) == 1, (slot, got)  # exactly once: never dropped, never twice
        if got[0] != text:
            assert isinstance(got[0], str) and got[0].startswith("error: ") and len(got[0]) > 12, (slot, got)
            assert slot[3] > 0, (slot, got)  # only a re-installed device may meet what it cannot read
            errors += 1
    assert set(outcomes) <= set(expected)
    for (observer, changed), count in changes.items():  # only real re-installs, each reported once
        assert count <= reinstalled[changed], (observer, changed, count)
    return {"messages": len(expected), "errors": errors, "reinstalls": sum(reinstalled.values()),
            "changes": sum(changes.values())}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_interleavings_without_reinstall_decrypt_everything_exactly_once(seed):
    stats = _run(seed, 1000, users=2 + seed % 2, devices=2 + (seed == 3), reinstalls=False)
    assert stats["errors"] == 0 and stats["messages"] > 300


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_random_interleavings_with_reinstalls_account_for_every_message(seed):
    stats = _run(seed, 1000, users=3, devices=2, reinstalls=True)
    assert stats["reinstalls"] > 0 and stats["messages"] > 300
    assert stats["changes"] > 0  # peers noticed the new identities
    assert stats["errors"] == 0  # the peers learnt of each re-install before writing to it
