"""REST for simple filters and the vacation answer, compiled into the user's active Sieve script.

- ``GET /api/vacation`` → ``{"enabled", "subject", "text", "from", "until"}``;
  ``PUT /api/vacation`` the same object (``enabled`` required, the others optional strings,
  ``until`` a date ``YYYY-MM-DD``: no answers after that day).
- ``GET /api/filters`` → ``{"items": [rule, ...]}``; ``PUT /api/filters`` ``{"items": [...]}`` or a
  bare list of rules ``{"if": {"header": "subject"|"from"|"to"|"cc"|"list-id"|"reply-to"|"sender",
  "contains"|"is": text}, "then": {"fileinto": mailbox} | {"flag": "\\\\Flagged"} | {"discard": true}}``.
  ``fileinto`` and ``discard`` end the filtering (Sieve ``stop``); ``flag`` goes on.
Both are written into the tau-managed section of the active script (a script named ``tau`` is
created and activated when there is none); 400 ``invalid_filter`` explains a refused body.
"""

from __future__ import annotations

from typing import Any

from tau.http.errors import HttpError
from tau.http.router import Response, json_response, read_json, read_json_object
from tau.mail.sieve import managed
from tau.mail.sieve.compile import ScriptError
from tau.mail.sieve.scripts import Scripts, SieveStoreError

DEFAULT_NAME = "tau"
NO_VACATION = {"enabled": False, "subject": None, "text": None, "from": None, "until": None}


class SieveAPI:
    def __init__(self, registry: Any) -> None:
        self.scripts = Scripts(registry)

    async def _settings(self, user: str) -> tuple[str, str, dict[str, Any]]:
        active = await self.scripts.active(user)
        if active is None:
            return DEFAULT_NAME, "", {}
        _, settings, _ = managed.split(active.content)
        return active.name, active.content, settings

    async def _save(self, user: str, key: str, value: Any) -> None:
        name, content, settings = await self._settings(user)
        settings = {**settings, key: value}
        try:
            script = managed.compose(content, settings)
            await self.scripts.put(user, name, script, activate=True)
        except managed.FilterError as exc:
            raise HttpError(400, "invalid_filter", str(exc)) from None
        except (ScriptError, SieveStoreError) as exc:
            raise HttpError(400, "invalid_filter", str(exc)) from None

    async def get_vacation(self, request: Any) -> Response:
        _, _, settings = await self._settings(request.user.address)
        return json_response({**NO_VACATION, **(settings.get("vacation") or {})})

    async def put_vacation(self, request: Any) -> Response:
        body = await read_json_object(request)
        try:
            vacation = managed.check_vacation(body)
        except managed.FilterError as exc:
            raise HttpError(400, "invalid_filter", str(exc)) from None
        await self._save(request.user.address, "vacation", vacation)
        return json_response({**NO_VACATION, **vacation})

    async def get_filters(self, request: Any) -> Response:
        _, _, settings = await self._settings(request.user.address)
        return json_response({"items": settings.get("filters") or []})

    async def put_filters(self, request: Any) -> Response:
        body = await read_json(request)
        items = body.get("items") if isinstance(body, dict) else body
        if not isinstance(items, list) or len(items) > 200:
            raise HttpError(400, "invalid_filter", 'send {"items": [rule, ...]} (at most 200 rules)')
        await self._save(request.user.address, "filters", items)
        return json_response({"items": items})


def register(registry: Any, http: Any) -> SieveAPI:
    api = SieveAPI(registry)
    http.route("GET", "/api/vacation", api.get_vacation, scope="mail")
    http.route("PUT", "/api/vacation", api.put_vacation, scope="mail")
    http.route("GET", "/api/filters", api.get_filters, scope="mail")
    http.route("PUT", "/api/filters", api.put_filters, scope="mail")
    return api
