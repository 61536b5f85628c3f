"""Group message cost on the client (not a test): pairwise fan-out, as ``tau.client`` sends groups.

    python tests/bench/bench_group_fanout.py [--members 50] [--devices 1] [--rounds 30]

A group message is encrypted once per device of every other member (and the sender's own
other devices) with that device's Double Ratchet session, the way Signal sent groups before
Sender Keys. This measures, for one message of ~100 characters, the client's encryption time
and the ``POST /api/messages`` body size: the first message (X3DH headers on every envelope)
and steady state (sessions answered). Prints one JSON object with median and min–max.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tau.client.device import DeviceState  # noqa: E402


def _bundle(state: DeviceState) -> dict:
    up = state.upload(1)
    return {"device_id": state.device_id, "registration_id": 7, "identity_key": up["identity_key"],
            "signed_prekey": up["signed_prekey"], "one_time_prekey": up["one_time_prekeys"][0]}


def _summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3), "max": round(max(values), 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--members", type=int, default=50)
    ap.add_argument("--devices", type=int, default=1, help="devices per member")
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    sender = DeviceState("m0@example.test", 1)
    peers = [DeviceState(f"m{i}@example.test", d) for i in range(1, args.members) for d in range(1, args.devices + 1)]
    members = [sender.user] + sorted({p.user for p in peers})
    for peer in peers:
        sender.start_session(peer.user, _bundle(peer))
    payload = json.dumps({"body": "x" * 100, "attachments": [], "sent_at": 0}).encode()

    def one() -> tuple[float, int, list[dict]]:
        start = time.perf_counter()
        envelopes = sender.envelopes(members, payload)
        body = json.dumps({"conversation": "1", "device_id": 1, "envelopes": envelopes})
        return (time.perf_counter() - start) * 1000, len(body), envelopes

    first_ms, first_bytes, envelopes = one()
    by_device = {(e["user"], e["device_id"]): e["ciphertext"] for e in envelopes}
    for peer in peers:  # every peer reads and answers once: steady state
        peer.decrypt(sender.user, 1, by_device[(peer.user, peer.device_id)])
        sender.decrypt(peer.user, peer.device_id, peer.encrypt(sender.user, 1, b"ok"))
    times, sizes = [], []
    for _ in range(args.rounds):
        ms, size, _ = one()
        times.append(ms)
        sizes.append(size)
    print(json.dumps({"members": args.members, "devices_per_member": args.devices, "envelopes": len(peers),
                      "first_message": {"client_ms": round(first_ms, 3), "bytes": first_bytes},
                      "steady_client_ms": _summary(times), "steady_bytes": _summary([float(s) for s in sizes]),
                      "plaintext_bytes": len(payload)}))


if __name__ == "__main__":
    main()
