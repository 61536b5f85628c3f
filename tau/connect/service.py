"""Install TauConnect into the daemon: ``/api/calls``, ``/ws/signal``, ``/call/{id}``, the SFU.

The SFU supervisor is added when aiortc is importable, which a plain ``pip install .`` gives
(aiortc is a default dependency since issue 20); on an install without it 1:1 calls still work
peer-to-peer and group calls are told ``sfu: unavailable``. Optional settings
are read from a ``[connect]`` section when the config has one (``sfu_workers``, ``sfu``: on/off),
so the defaults need no configuration at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tau.connect import api
from tau.connect.calls import Calls, NoMedia
from tau.connect.hub import SignalHub
from tau.connect.sfu import supervisor
from tau.connect.signaling import SignalSocket
from tau.http.websocket import make_resource

if TYPE_CHECKING:
    from tau.registry import Registry

#: signaling frames are small; SDP is at most 64 KiB
MAX_FRAME = 256 * 1024
#: seconds a freshly started SFU worker may take to report ready before health calls it missing
SFU_START_GRACE = 20.0


def _settings(registry: Registry) -> dict[str, Any]:
    section = registry.config.connect
    return {"sfu": section.sfu, "sfu_workers": section.sfu_workers}


def build(registry: Registry, media: Any = None) -> tuple[Calls, SignalHub, Any]:
    """The calls domain, its hub and the ``/ws/signal`` resource (tests mount them on a TauSite)."""
    calls = Calls(registry, media)
    hub = SignalHub(registry.bus)
    resource = make_resource(registry, SignalSocket, max_frame=MAX_FRAME)
    resource._factory.calls = calls
    resource._factory.hub = hub
    return calls, hub, resource


def install(registry: Registry, host: Any) -> None:
    settings = _settings(registry)
    media: Any = NoMedia()
    if settings["sfu"] and supervisor.available():
        media = supervisor.SfuSupervisor(registry, workers=settings["sfu_workers"])
        host.add_service(media)
    calls, hub, resource = build(registry, media)
    api.register(host.http, calls)
    host.http.mount("/ws/signal", resource, auth="none")
    registry.services["connect"] = "ok"
    registry.services["connect_sfu"] = "ok" if isinstance(media, supervisor.SfuSupervisor) else "unavailable"
    if settings["sfu"]:  # asked for: its absence is a degradation /api/health names (group calls refused)
        registry.health_checks["sfu"] = lambda: sfu_health(media)


def sfu_health(media: Any) -> str:
    """``ok``, or ``degraded: why`` when group calls cannot get a media server."""
    if not isinstance(media, supervisor.SfuSupervisor):
        return "degraded: aiortc is not installed (the `connect` extra): group calls are refused"
    if media.status == "ok":
        return "ok"
    now = media.reactor.seconds()
    starting = [w for w in media.workers.values()
                if not w.ended.called and now - getattr(w, "started_at", now) < SFU_START_GRACE]
    if starting and not media.restarts:
        return "ok"  # first start: the worker is still importing aiortc
    return "degraded: no SFU media worker is running: group calls are refused"
