"""An in-memory stand-in for the server's messenger relay, for seeded property tests of ``DeviceState``.

It keeps the server's rules that matter to sessions (tau/messenger/keys.py and messages.py):
each one-time prekey is handed out once; a post must carry one envelope per registered
device of the conversation's members except the sending device, else a ``device_mismatch``
answer lists ``missing``/``extra``/``stale`` devices; a re-installed device gets a new
registration id and its queue is dropped. Delivery is in order per device.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from tau.client.device import DeviceState


@dataclass
class Install:
    state: DeviceState
    registration_id: int
    generation: int
    bundle: dict[str, Any]
    one_time: list[dict[str, Any]]
    queue: list[tuple[str, str, int, str]] = field(default_factory=list)  # (msg id, from, from device, envelope)


class Relay:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.devices: dict[tuple[str, int], Install] = {}
        self.wiped: set[tuple[str, str, int, int]] = set()  # (msg, user, device, generation) lost with a queue

    def install(self, user: str, device: int) -> Install:
        old = self.devices.get((user, device))
        if old is not None:
            self.wiped.update((m, user, device, old.generation) for m, *_ in old.queue)
        state = DeviceState(user, device)
        upload = state.upload(4)
        inst = Install(state, self.rng.randrange(1, 2**31), old.generation + 1 if old else 0,
                       {"device_id": device, "identity_key": upload["identity_key"],
                        "signed_prekey": upload["signed_prekey"]}, upload["one_time_prekeys"])
        inst.state.registration_id = inst.registration_id  # what Client.login learns from its own bundle
        self.devices[(user, device)] = inst
        return inst

    def bundle(self, user: str, device: int) -> dict[str, Any]:
        inst = self.devices[(user, device)]
        if len(inst.one_time) < 2:  # what the prekeys_low push makes a client do
            inst.one_time += inst.state.new_one_time_prekeys(4)
        opk = inst.one_time.pop(0) if inst.one_time else None
        return {**inst.bundle, "registration_id": inst.registration_id, "one_time_prekey": opk}

    def post(self, sender: DeviceState, members: list[str], msg_id: str,
             envelopes: list[dict[str, Any]]) -> dict[str, Any] | None:
        expected = {k for k in self.devices if k[0] in members} - {(sender.user, sender.device_id)}
        given = {(e["user"], e["device_id"]): e for e in envelopes}
        answer = {"missing": [{"user": u, "device_id": d} for u, d in sorted(expected - set(given))],
                  "extra": [{"user": u, "device_id": d} for u, d in sorted(set(given) - expected)],
                  "stale": [{"user": u, "device_id": d} for (u, d), e in sorted(given.items())
                            if (u, d) in expected and e.get("registration_id") not in (None, self.devices[u, d]
                                                                                       .registration_id)]}
        if any(answer.values()):
            return answer
        for (user, device), env in given.items():
            self.devices[(user, device)].queue.append((msg_id, sender.user, sender.device_id, env["ciphertext"]))
        return None

    def send(self, sender: DeviceState, members: list[str], msg_id: str, payload: bytes) -> list[tuple[str, int]]:
        """What ``Client.send`` does: encrypt per device, repair on mismatch, retry. Returns the recipients."""
        for _ in range(5):
            envelopes = sender.envelopes(members, payload)
            answer = self.post(sender, members, msg_id, envelopes)
            if answer is None:
                return [(e["user"], e["device_id"]) for e in envelopes]
            for user, device in sender.repair(answer):
                sender.start_session(user, self.bundle(user, device))
        raise AssertionError(f"{msg_id}: device lists never converged")
