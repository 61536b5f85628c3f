"""Quota (RFC 4331): the ``DAV:quota-used-bytes`` and ``DAV:quota-available-bytes`` properties
(registered in ``tau.dav.properties``) and the 507 answer for a write that would exceed it."""

from __future__ import annotations

from tau.dav.errors import DavError


def insufficient_storage(used: int, limit: int, needed: int) -> DavError:
    """507 with ``DAV:quota-not-exceeded`` (RFC 4331 §6)."""
    return DavError(507, f"quota exceeded: {used} + {needed} bytes over the {limit}-byte quota",
                    "<D:quota-not-exceeded/>")


def available(used: int, limit: int | None) -> int | None:
    """Bytes still free (None: unlimited)."""
    return None if not limit else max(0, limit - used)
