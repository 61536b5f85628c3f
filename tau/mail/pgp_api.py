"""The OpenPGP routes: key upload and read-back (``/api/keys/pgp``) and the Web Key Directory
(``/.well-known/openpgpkey/...``); the rules and the crypto are :mod:`tau.mail.pgp`'s."""

from __future__ import annotations

from typing import Any

from tau.http.errors import HttpError
from tau.http.router import Response, json_response, query_arg, read_json_object
from tau.mail import pgp, pgp_store


class PgpAPI:
    def __init__(self, registry: Any) -> None:
        self.registry = registry

    async def put_key(self, request: Any) -> Response:
        body = await read_json_object(request)
        public, private, passphrase = body.get("public_key"), body.get("private_key"), body.get("passphrase")
        if not isinstance(public, str) or not public.strip() or len(public) > 200_000:
            raise HttpError(400, "invalid_key", "public_key must be an ASCII-armored OpenPGP public key")
        if private is not None and not isinstance(private, str) or passphrase is not None and not isinstance(
                passphrase, str):
            raise HttpError(400, "invalid_key", "private_key and passphrase must be strings")
        user = request.user
        try:
            fingerprint, armored, secret = await self.registry.run_in_thread(pgp.check_upload, user.address, public,
                                                                           private, passphrase)
        except Exception as exc:
            raise HttpError(400, "invalid_key", f"key refused: {exc}")
        digest = pgp.wkd_hash(user.address.rpartition("@")[0])
        await self.registry.db.run("pgp_save_key", pgp_store.save_key, self.registry.keyring, user.id,
                                   fingerprint, armored, secret, digest)
        return json_response({"fingerprint": fingerprint, "wkd_hash": digest, "has_private_key": bool(secret)})

    async def get_key(self, request: Any) -> Response:
        found = (await pgp.keys_of(self.registry, [request.user.address])).get(request.user.address.lower())
        if found is None:
            raise HttpError(404, "not_found", "no OpenPGP key uploaded")
        return json_response({"public_key": found[0], "has_private_key": found[1] is not None})

    async def known(self, request: Any) -> Response:
        """Which of ``?addresses=a,b`` have an OpenPGP key here, and whether the caller can sign:
        what a compose form needs to offer "Encrypt" and "Sign" only when they can work."""
        wanted = [a.strip().lower() for a in (query_arg(request, "addresses") or "").split(",") if a.strip()]
        if len(wanted) > 100 or any(len(a) > 320 for a in wanted):
            raise HttpError(400, "invalid_query", "at most 100 addresses")
        me = request.user.address.lower()
        keys = await pgp.keys_of(self.registry, [me, *wanted])
        own = keys.get(me)
        return json_response({"sign": own is not None and own[1] is not None, "own_key": own is not None,
                              "addresses": {a: a in keys for a in wanted}})

    async def wkd(self, request: Any, hash: str, domain: str | None = None) -> Response:
        local = query_arg(request, "l")
        host = (domain or (request.getRequestHostname() or b"").decode("ascii", "replace")).lower()
        matches = await self.registry.db.run("pgp_wkd", pgp_store.by_wkd_hash, hash.lower(), readonly=True)
        chosen = [k for a, k in matches if (local is None or a.rpartition("@")[0].lower() == local.lower())
                  and (a.rpartition("@")[2] == host or (domain is None and len(matches) == 1))]
        if not chosen:
            raise HttpError(404, "not_found", "no key")
        binary = await self.registry.run_in_thread(pgp.binary, chosen[0])
        return Response(binary, 200, "application/octet-stream", {"Access-Control-Allow-Origin": "*"})

    async def wkd_advanced(self, request: Any, domain: str, hash: str) -> Response:
        return await self.wkd(request, hash, domain)

    async def policy(self, request: Any, domain: str | None = None) -> Response:
        return Response(b"", 200, "text/plain")


def register(registry: Any, http: Any) -> PgpAPI:
    api = PgpAPI(registry)
    http.route("PUT", "/api/keys/pgp", api.put_key, scope="mail")
    http.route("GET", "/api/keys/pgp", api.get_key, scope="mail")
    http.route("GET", "/api/keys/pgp/known", api.known, scope="mail")
    http.route("GET", "/.well-known/openpgpkey/hu/{hash}", api.wkd, auth="none")
    http.route("GET", "/.well-known/openpgpkey/policy", api.policy, auth="none")
    http.route("GET", "/.well-known/openpgpkey/{domain}/hu/{hash}", api.wkd_advanced, auth="none")
    http.route("GET", "/.well-known/openpgpkey/{domain}/policy", api.policy, auth="none")
    return api
