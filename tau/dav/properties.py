"""Live properties (RFC 4918 §15, RFC 4331 §3-4, RFC 6578 §4, RFC 3253 §3.1.5) and their registry.

A live property is a getter that returns the inner XML of the property for a resource (None:
not defined on it). ``allprop=False`` keeps expensive or RFC-excluded properties out of
``DAV:allprop`` (quota and sync-token must be asked for by name). CalDAV registers its own
properties on a ``PropertyRegistry`` built from ``standard_properties()``. Dead properties are
whatever the store keeps (``Resource.dead_properties``); a live property always wins.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from tau.dav.conditions import http_date
from tau.dav.locks import SUPPORTED_LOCK, LockSnapshot, lock_discovery
from tau.dav.resource import Collection, Resource

Getter = Callable[[Resource, "PropContext"], "str | None | Awaitable[str | None]"]


@dataclass(slots=True)
class PropContext:
    """Per-response facts a getter may need."""

    href: str
    lock_key: tuple[str, ...]
    locks: LockSnapshot
    now: float
    provider: Any
    user: Any


@dataclass(frozen=True)
class LiveProperty:
    name: str
    get: Getter
    allprop: bool = True
    protected: bool = True


class PropertyRegistry:
    def __init__(self, props: list[LiveProperty] | None = None) -> None:
        self.props: dict[str, LiveProperty] = {}
        for prop in props or []:
            self.register(prop)

    def register(self, prop: LiveProperty) -> None:
        self.props[prop.name] = prop

    def is_protected(self, name: str) -> bool:
        prop = self.props.get(name)
        return prop is not None and prop.protected

    async def value(self, name: str, resource: Resource, pctx: PropContext) -> str | None:
        prop = self.props.get(name)
        if prop is None:
            return None
        result = prop.get(resource, pctx)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def present(self, resource: Resource, pctx: PropContext, allprop_only: bool) -> dict[str, str]:
        """Every live property defined on ``resource`` (those in allprop, or all) → inner XML."""
        out: dict[str, str] = {}
        for name, prop in self.props.items():
            if allprop_only and not prop.allprop:
                continue
            value = prop.get(resource, pctx)
            if inspect.isawaitable(value):
                value = await value
            if value is not None:
                out[name] = value
        return out


def _rfc3339(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _resourcetype(r: Resource, _: PropContext) -> str:
    inner = "<D:collection/>" if r.is_collection else ""
    for name in r.resource_types:
        ns, _, local = name[1:].partition("}")
        inner += f'<x:{local} xmlns:x="{escape(ns)}"/>' if ns != "DAV:" else f"<D:{local}/>"
    return inner


def _etag(r: Resource, _: PropContext) -> str | None:
    tag = r.etag()
    return escape(tag) if tag is not None else None


def _length(r: Resource, _: PropContext) -> str | None:
    n = r.content_length()
    return None if r.is_collection or n is None else str(n)


def _ctype(r: Resource, _: PropContext) -> str | None:
    return None if r.is_collection else escape(r.content_type() or "application/octet-stream")


def _modified(r: Resource, _: PropContext) -> str | None:
    t = r.last_modified()
    return None if t is None else http_date(t)


def _created(r: Resource, _: PropContext) -> str | None:
    return _rfc3339(r.creation_date())


def _displayname(r: Resource, _: PropContext) -> str | None:
    name = r.display_name()
    return None if name is None else escape(name)


def _lockdiscovery(r: Resource, p: PropContext) -> str:
    return lock_discovery(p.locks.covering(p.lock_key), p.now)


def _supportedlock(r: Resource, _: PropContext) -> str:
    return SUPPORTED_LOCK


async def _quota_used(r: Resource, _: PropContext) -> str | None:
    if not isinstance(r, Collection):
        return None
    quota = await r.quota()
    return None if quota is None else str(quota[0])


async def _quota_available(r: Resource, _: PropContext) -> str | None:
    if not isinstance(r, Collection):
        return None
    quota = await r.quota()
    if quota is None:
        return None
    # RFC 4331 §3: unlimited storage is reported as a very large number rather than omitted
    return str(quota[1] if quota[1] is not None else 2**53)


def _sync_token(r: Resource, _: PropContext) -> str | None:
    token = r.sync_token() if isinstance(r, Collection) else None
    return None if token is None else escape(token)


def _supported_reports(r: Resource, p: PropContext) -> str | None:
    names = p.provider.supported_reports(r) if p.provider is not None else []
    if not names:
        return None
    out = []
    for name in names:
        ns, _, local = name[1:].partition("}")
        inner = f"<D:{local}/>" if ns == "DAV:" else f'<x:{local} xmlns:x="{escape(ns)}"/>'
        out.append(f"<D:supported-report><D:report>{inner}</D:report></D:supported-report>")
    return "".join(out)


def _current_user_principal(r: Resource, p: PropContext) -> str | None:
    url = getattr(p.provider, "principal_url", None)
    href = url(p.user) if callable(url) else None
    return None if href is None else f"<D:href>{escape(href)}</D:href>"


def standard_properties() -> PropertyRegistry:
    d = "{DAV:}"
    return PropertyRegistry([
        LiveProperty(d + "resourcetype", _resourcetype),
        LiveProperty(d + "getetag", _etag),
        LiveProperty(d + "getcontentlength", _length),
        LiveProperty(d + "getcontenttype", _ctype),
        LiveProperty(d + "getlastmodified", _modified),
        LiveProperty(d + "creationdate", _created),
        LiveProperty(d + "displayname", _displayname, protected=False),
        LiveProperty(d + "lockdiscovery", _lockdiscovery),
        LiveProperty(d + "supportedlock", _supportedlock),
        LiveProperty(d + "quota-used-bytes", _quota_used, allprop=False),
        LiveProperty(d + "quota-available-bytes", _quota_available, allprop=False),
        LiveProperty(d + "sync-token", _sync_token, allprop=False),
        LiveProperty(d + "supported-report-set", _supported_reports, allprop=False),
        LiveProperty(d + "current-user-principal", _current_user_principal, allprop=False),
    ])
