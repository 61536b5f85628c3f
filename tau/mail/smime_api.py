"""The S/MIME routes: the user's own certificate and key (``/api/keys/smime``) and the certificates
they keep for correspondents (``/api/keys/smime/recipients/{address}``); rules and crypto are
:mod:`tau.mail.smime`'s, rows :mod:`tau.mail.smime_store`'s.

- ``PUT /api/keys/smime`` ``{"pkcs12": base64 of the .p12, "password"?}`` → 200 the certificate's
  description (``fingerprint``, ``subject``, ``issuer``, ``serial``, ``addresses``, ``not_before``,
  ``not_after``); 400 ``invalid_key`` when the bundle cannot be opened (wrong password), holds no key,
  the key does not match, the certificate does not name the user's address or is not valid now.
- ``GET /api/keys/smime`` → the description plus ``"certificate"`` (PEM); never the key. 404 none.
- ``DELETE /api/keys/smime`` → 200 ``{"deleted": true}`` (404 when there was none).
- ``PUT /api/keys/smime/recipients/{address}`` ``{"certificate": PEM}`` (400 ``invalid_certificate``
  unless it names the address and is valid now); ``GET`` (+ ``"source"``: ``upload`` or ``mail``);
  ``DELETE``; ``GET /api/keys/smime/recipients?limit=&cursor=`` lists them (``address``,
  ``fingerprint``, ``source``, ``not_after``).
"""

from __future__ import annotations

import base64
import binascii
import datetime
from typing import Any

from tau.http.errors import HttpError
from tau.http.router import Response, json_response, query_arg, read_json_object
from tau.mail import smime, smime_store
from tau.mail.compose import valid_address

MAX_LIMIT = 200


def _iso(epoch: int) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class SmimeAPI:
    def __init__(self, registry: Any) -> None:
        self.registry = registry

    def _now(self) -> float:
        return float(self.registry.clock.seconds())

    async def put_identity(self, request: Any) -> Response:
        body = await read_json_object(request)
        p12, password = body.get("pkcs12"), body.get("password")
        if not isinstance(p12, str) or not p12 or len(p12) > smime.MAX_PKCS12 * 2:
            raise HttpError(400, "invalid_key", "pkcs12 must be the base64 of a PKCS#12 (.p12) file")
        if password is not None and not isinstance(password, str):
            raise HttpError(400, "invalid_key", "password must be a string")
        try:
            data = base64.b64decode(p12, validate=True)
        except (binascii.Error, ValueError):
            raise HttpError(400, "invalid_key", "pkcs12 is not base64")
        user = request.user
        try:
            cert, key_der = await self.registry.run_in_thread(smime.check_pkcs12, user.address, data, password,
                                                              self._now())
        except ValueError as exc:
            raise HttpError(400, "invalid_key", f"PKCS#12 refused: {exc}")
        sealed = smime.seal(self.registry.keys, key_der, user.id)
        del key_der
        await self.registry.db.run("smime_save_identity", smime_store.save_identity, user.id, smime.fingerprint(cert),
                                   smime.pem(cert), sealed, int(cert.not_valid_after_utc.timestamp()))
        return json_response(smime.describe(cert))

    async def get_identity(self, request: Any) -> Response:
        found = await self.registry.db.run("smime_identity", smime_store.identity, request.user.id, readonly=True)
        if found is None:
            raise HttpError(404, "not_found", "no S/MIME certificate uploaded")
        return json_response({**smime.describe(smime.load_certificate(found[0])), "certificate": found[0]})

    async def delete_identity(self, request: Any) -> Response:
        if not await self.registry.db.run("smime_delete_identity", smime_store.delete_identity, request.user.id):
            raise HttpError(404, "not_found", "no S/MIME certificate uploaded")
        return json_response({"deleted": True})

    # -- correspondents ---------------------------------------------------------------------------

    def _address(self, address: str) -> str:
        if valid_address(address) != address:
            raise HttpError(400, "invalid_address", f"not a mail address: {address[:100]!r}")
        return address.lower()

    async def put_recipient(self, request: Any, address: str) -> Response:
        address = self._address(address)
        body = await read_json_object(request)
        text = body.get("certificate")
        if not isinstance(text, str) or not text.strip():
            raise HttpError(400, "invalid_certificate", "certificate must be a PEM certificate")
        try:
            cert = smime.load_certificate(text)
            smime.check_certificate(cert, address, self._now())
        except ValueError as exc:
            raise HttpError(400, "invalid_certificate", f"certificate refused: {exc}")
        await self.registry.db.run("smime_save_cert", smime_store.save_certificate, request.user.id, address,
                                   smime.fingerprint(cert), smime.pem(cert), "upload",
                                   int(cert.not_valid_after_utc.timestamp()))
        return json_response({**smime.describe(cert), "address": address, "source": "upload"})

    async def get_recipient(self, request: Any, address: str) -> Response:
        address = self._address(address)
        found = await self.registry.db.run("smime_cert", smime_store.certificate, request.user.id, address,
                                           readonly=True)
        if found is None:
            raise HttpError(404, "not_found", f"no S/MIME certificate kept for {address}")
        return json_response({**smime.describe(smime.load_certificate(found[0])), "address": address,
                              "source": found[1], "certificate": found[0]})

    async def delete_recipient(self, request: Any, address: str) -> Response:
        address = self._address(address)
        if not await self.registry.db.run("smime_delete_cert", smime_store.delete_certificate, request.user.id,
                                          address):
            raise HttpError(404, "not_found", f"no S/MIME certificate kept for {address}")
        return json_response({"deleted": True})

    async def list_recipients(self, request: Any) -> Response:
        """``?limit=N&cursor=C`` (INTERFACE.md): in address order, the cursor is the last address served."""
        try:
            limit = int(query_arg(request, "limit", "50") or 50)
        except ValueError:
            raise HttpError(400, "invalid_query", "limit must be a number")
        if not 1 <= limit <= MAX_LIMIT:
            raise HttpError(400, "invalid_query", f"limit must be 1..{MAX_LIMIT}")
        cursor = query_arg(request, "cursor") or ""
        rows = await self.registry.db.run("smime_certs", smime_store.list_certificates, request.user.id, cursor,
                                          limit + 1, readonly=True)
        page = rows[:limit]
        return json_response({"items": [{"address": a, "fingerprint": f, "source": s, "not_after": _iso(n)}
                                        for a, f, s, n in page],
                              "next_cursor": page[-1][0] if len(rows) > limit else None})


def register(registry: Any, http: Any) -> SmimeAPI:
    api = SmimeAPI(registry)
    http.route("PUT", "/api/keys/smime", api.put_identity, scope="mail")
    http.route("GET", "/api/keys/smime", api.get_identity, scope="mail")
    http.route("DELETE", "/api/keys/smime", api.delete_identity, scope="mail")
    http.route("GET", "/api/keys/smime/recipients", api.list_recipients, scope="mail")
    http.route("PUT", "/api/keys/smime/recipients/{address}", api.put_recipient, scope="mail")
    http.route("GET", "/api/keys/smime/recipients/{address}", api.get_recipient, scope="mail")
    http.route("DELETE", "/api/keys/smime/recipients/{address}", api.delete_recipient, scope="mail")
    return api
