"""The daemon's side of the SFU: spawn worker processes, route signaling to them, restart them.

Media runs in ``python -m tau.connect.sfu.worker`` processes started with
``reactor.spawnProcess``; this module never imports aiortc (the reactor process must not load
it: it is optional, heavy, and its asyncio loop has no place on the protocol reactor).
Rooms are placed on the least-loaded running worker and stay there. When a worker dies
unexpectedly it is started again (with back-off) and, once the new one is ready, every
participant of its rooms gets ``{"type": "renegotiate"}``: clients then publish afresh and the
new worker rebuilds their streams. The daemon itself is unaffected.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger

from tau.bus import events
from tau.connect.sfu.protocol import LineBuffer, encode
from tau.connect.store import CallError

if TYPE_CHECKING:
    from tau.registry import Registry

log = Logger()
SFU = "sfu"


def available() -> bool:
    """aiortc importable by a worker (checked without importing it here)."""
    return importlib.util.find_spec("aiortc") is not None


class Worker(ProcessProtocol):
    def __init__(self, supervisor: "SfuSupervisor", index: int) -> None:
        self.supervisor, self.index = supervisor, index
        self.lines = LineBuffer()
        self.ready = False
        self.pid: int | None = None
        self.ended: defer.Deferred[None] = defer.Deferred()
        self.stats: dict[str, Any] = {}
        self._stderr_lines = 0

    def send(self, message: dict[str, Any]) -> None:
        if self.transport is not None and not self.ended.called:
            self.transport.write(encode(message))

    def outReceived(self, data: bytes) -> None:  # noqa: N802
        for event in self.lines.feed(data):
            self.supervisor.worker_event(self, event)

    def errReceived(self, data: bytes) -> None:  # noqa: N802
        # a worker's own diagnostics; bounded so a noisy library cannot flood the daemon's log
        for line in data.decode("utf-8", "replace").splitlines():
            if line.strip() and self._stderr_lines < 200:
                self._stderr_lines += 1
                log.info("sfu worker {index}: {line}", index=self.index, line=line[:300])

    def processEnded(self, reason: Any) -> None:  # noqa: N802
        self.ready = False
        self.ended.callback(None)
        self.supervisor.worker_ended(self, reason)


class SfuSupervisor(Service):
    name = "connect-sfu"

    def __init__(self, registry: Registry, workers: int = 1, argv: list[str] | None = None) -> None:
        self.registry, self.reactor, self.bus = registry, registry.reactor, registry.bus
        self.size = max(1, workers)
        self.argv = argv or [sys.executable, "-m", "tau.connect.sfu.worker"]
        self.workers: dict[int, Worker] = {}
        self.rooms: dict[str, int] = {}  # call id → worker index
        self._pending_renegotiation: dict[int, set[str]] = {}
        self._backoff: dict[int, float] = {}
        self._stopping = False
        self.restarts = 0

    # -- life cycle -----------------------------------------------------------------------------
    def startService(self) -> None:
        super().startService()
        self._stopping = False
        for index in range(self.size):
            self._spawn(index)

    def stopService(self) -> Any:
        super().stopService()
        self._stopping = True
        waits = []
        for worker in self.workers.values():
            if worker.ended.called:
                continue
            worker.send({"op": "quit"})
            waits.append(worker.ended)
            self.reactor.callLater(5, self._kill, worker)
        return defer.DeferredList(waits) if waits else None

    def _kill(self, worker: Worker) -> None:
        if not worker.ended.called:
            try:
                worker.transport.signalProcess("KILL")
            except Exception:
                pass

    def _spawn(self, index: int) -> None:
        worker = Worker(self, index)
        self.workers[index] = worker
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        process = self.reactor.spawnProcess(worker, self.argv[0], self.argv, env=env,
                                            childFDs={0: "w", 1: "r", 2: "r"})
        worker.pid = process.pid
        worker.started_at = self.reactor.seconds()
        log.info("sfu worker {index} started (pid {pid})", index=index, pid=worker.pid)

    @property
    def status(self) -> str:
        return "ok" if any(w.ready for w in self.workers.values()) else "unavailable"

    def pids(self) -> list[int]:
        return [w.pid for w in self.workers.values() if w.pid and not w.ended.called]

    # -- worker events --------------------------------------------------------------------------
    def worker_event(self, worker: Worker, event: dict[str, Any]) -> None:
        kind = event.get("ev")
        room, peer = event.get("room"), event.get("peer")
        if kind == "ready":
            worker.ready = True
            self._backoff.pop(worker.index, None)
            if not event.get("passthrough"):
                log.warn("sfu worker {index}: no aiortc passthrough, frames are re-encoded", index=worker.index)
            for call_id in sorted(self._pending_renegotiation.pop(worker.index, set())):
                self._tell_room(call_id, {"type": "renegotiate", "call_id": call_id,
                                          "reason": "media_server_restarted"})
        elif kind in ("answer", "offer") and room and peer:
            frame = {"type": kind, "call_id": room, "from": SFU, "sdp": event.get("sdp")}
            if event.get("stream"):
                frame["stream"] = event["stream"]
            self.bus.publish(events.SIGNAL_FRAME, {"call_id": room, "to": peer, "frame": frame})
        elif kind == "unpublished" and room and peer:
            self.bus.publish(events.SIGNAL_FRAME, {"call_id": room, "to": peer, "frame": {
                "type": "stream_ended", "call_id": room, "from": SFU, "stream": event.get("stream")}})
        elif kind == "error" and room and peer:
            log.info("sfu worker {index}: {message}", index=worker.index, message=event.get("message"))
            frame = {"type": "error", "error": "sfu_error", "message": "the media server refused this",
                     "call_id": room}
            if event.get("stream"):
                frame["stream"] = event["stream"]
            self.bus.publish(events.SIGNAL_FRAME, {"call_id": room, "to": peer, "frame": frame})
        elif kind == "stats":
            worker.stats = event

    def worker_ended(self, worker: Worker, reason: Any) -> None:
        if self.workers.get(worker.index) is not worker:
            return
        lost = {call_id for call_id, index in self.rooms.items() if index == worker.index}
        for call_id in lost:
            del self.rooms[call_id]
        if self._stopping:
            return
        self.restarts += 1
        log.warn("sfu worker {index} (pid {pid}) died: {reason}; restarting, {n} room(s) will renegotiate",
                 index=worker.index, pid=worker.pid, reason=str(reason.value)[:200], n=len(lost))
        self._pending_renegotiation.setdefault(worker.index, set()).update(lost)
        uptime = self.reactor.seconds() - getattr(worker, "started_at", 0)
        delay = 0.2 if uptime > 60 else min(30.0, self._backoff.get(worker.index, 0.1) * 2)
        self._backoff[worker.index] = delay
        self.reactor.callLater(delay, self._respawn, worker.index)

    def _respawn(self, index: int) -> None:
        if not self._stopping and self.running:
            self._spawn(index)

    def _tell_room(self, call_id: str, frame: dict[str, Any]) -> None:
        self.bus.publish(events.SIGNAL_FRAME, {"call_id": call_id, "frame": frame})

    # -- what signaling asks --------------------------------------------------------------------
    def _worker_for(self, call_id: str) -> Worker:
        index = self.rooms.get(call_id)
        worker = self.workers.get(index) if index is not None else None
        if worker is not None and worker.ready:
            return worker
        ready = [w for w in self.workers.values() if w.ready]
        if not ready:
            raise CallError(503, "sfu_unavailable", "the media server is starting or restarting; try again")
        load = {w.index: 0 for w in ready}
        for index in self.rooms.values():
            if index in load:
                load[index] += 1
        worker = min(ready, key=lambda w: (load[w.index], w.index))
        self.rooms[call_id] = worker.index
        return worker

    def handle(self, call_id: str, participant_id: str, frame: dict[str, Any]) -> None:
        """An ``offer``/``answer``/``ice`` frame a participant addressed to ``"sfu"``."""
        worker = self._worker_for(call_id)
        kind = frame["type"]
        message: dict[str, Any] = {"room": call_id, "peer": participant_id}
        if kind == "offer":
            message.update(op="publish", sdp=frame["sdp"])
        elif kind == "answer":
            if not isinstance(frame.get("stream"), str):
                raise CallError(400, "invalid_request", "an answer to the SFU names the stream it answers")
            message.update(op="answer", stream=frame["stream"], sdp=frame["sdp"])
        else:
            message.update(op="ice", candidate=frame.get("candidate"))
            if isinstance(frame.get("stream"), str):
                message["stream"] = frame["stream"]
        worker.send(message)

    def peer_left(self, call_id: str, participant_id: str) -> None:
        index = self.rooms.get(call_id)
        if index is not None and index in self.workers:
            self.workers[index].send({"op": "leave", "room": call_id, "peer": participant_id})

    def room_closed(self, call_id: str) -> None:
        index = self.rooms.pop(call_id, None)
        if index is not None and index in self.workers:
            self.workers[index].send({"op": "close", "room": call_id})
