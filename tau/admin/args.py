"""Query arguments the admin API's listings share."""

from __future__ import annotations

from typing import Any

from tau.http.errors import HttpError
from tau.http.router import query_arg


def limit_arg(request: Any, maximum: int, default: int = 100) -> int:
    """``?limit=``, clamped to 1..``maximum``; not a number is a 400 (not a silent default)."""
    try:
        return max(1, min(maximum, int(query_arg(request, "limit", str(default)) or default)))
    except ValueError:
        raise HttpError(400, "invalid_limit", "limit must be a number") from None
