"""Forwarding without transcoding, inside an aiortc worker process (never imported by the daemon).

Stock aiortc decodes every received frame and encodes it again per receiver. An SFU must not:
it would cost a core per few streams and add latency. aiortc's sender already accepts encoded
``av.Packet`` objects (``Encoder.pack``: re-packetise, no encode); what is missing is a receiver
that hands out encoded frames. :func:`install` swaps the receiver's decoder thread function for
one that wraps each reassembled frame (the jitter buffer's output) in an ``av.Packet``, so
``MediaRelay`` fans the encoded frames out and each subscriber's sender only re-packetises them.

Because nothing is decoded, a subscriber can only start at a keyframe: its sender's keyframe
requests (PLI/FIR, RFC 4585 6.3.1) are turned into a PLI to the publisher (:class:`KeyframeRelay`).
"""

from __future__ import annotations

import asyncio
import fractions
import time
from typing import Any

import av
from aiortc import rtcrtpreceiver


def _passthrough_worker(loop: asyncio.AbstractEventLoop, input_q: Any, output_q: asyncio.Queue,
                        decode_error: Any) -> None:
    """Same contract as ``aiortc.rtcrtpreceiver.decoder_worker``, minus the decoding."""
    while True:
        task = input_q.get()
        if task is None:
            loop.call_soon_threadsafe(output_q.put_nowait, None)
            break
        codec, encoded_frame = task
        packet = av.Packet(encoded_frame.data)
        packet.pts = encoded_frame.timestamp
        packet.time_base = fractions.Fraction(1, codec.clockRate)
        loop.call_soon_threadsafe(output_q.put_nowait, packet)


def install() -> bool:
    """Make every receiver in this process forward encoded frames. False if aiortc changed shape
    (then the SFU still works, decoding and re-encoding, and says so in its ``ready`` event)."""
    original = getattr(rtcrtpreceiver, "decoder_worker", None)
    if original is None or original.__code__.co_argcount != 4:
        return False
    rtcrtpreceiver.decoder_worker = _passthrough_worker
    return True


class KeyframeRelay:
    """Send a PLI upstream to a publisher, at most every ``interval`` seconds."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self._last: dict[int, float] = {}

    def request(self, pc: Any) -> None:
        if pc is None or pc.connectionState == "closed":
            return
        now = time.monotonic()
        if now - self._last.get(id(pc), 0.0) < self.interval:
            return
        self._last[id(pc)] = now
        for transceiver in pc.getTransceivers():
            if transceiver.kind != "video":
                continue
            receiver = transceiver.receiver
            for source in receiver.getSynchronizationSources():
                asyncio.ensure_future(receiver._send_rtcp_pli(source.source))

    def hook(self, sender: Any, publisher_pc: Any) -> None:
        """A subscriber's keyframe request on ``sender`` becomes a PLI to the publisher."""
        sender._send_keyframe = lambda: self.request(publisher_pc)

    def forget(self, pc: Any) -> None:
        self._last.pop(id(pc), None)
