"""``/api/admin/domains/{name}/dkim`` and ``.../dns``: a domain's DKIM keys and its DNS check.

The records are the ones ``tau check`` prints and ``tau check --live`` verifies
(tau.cli.dnsrecords, tau.cli.dnslive): the page and the command line cannot disagree.
``POST .../dkim {"algorithm"?: "rsa"|"ed25519", "selector"?}`` makes a key like ``tau dkim keygen``
(409 ``dkim_key_exists`` when that selector has one) and answers the TXT record to publish; the
daemon signs with it within a minute. ``GET .../dns?live=1`` looks every record up (a few seconds
at most per record) and says ok, warn or FAIL per record, like mailcow's DNS check.
Key generation, key files and DNS lookups are blocking: they run in a worker thread.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from tau.auth import accounts
from tau.http.errors import HttpError
from tau.http.router import Response, json_response, query_arg, read_json_object
from tau.mail.trust import dkim

if TYPE_CHECKING:
    from tau.registry import Registry

NO_ANSWER = "no answer from the DNS server"  # tau.cli.dnslive's verdict when the server times out
Run = Callable[..., Awaitable[Any]]
Routes = list[tuple[str, str, Callable[..., Awaitable[Response]]]]


def _record(domain: str, selector: str, algorithm: str, txt: str) -> dict[str, str]:
    from tau.cli.dnsrecords import quoted

    return {"selector": selector, "algorithm": algorithm, "name": f"{selector}._domainkey.{domain}.",
            "type": "TXT", "value": quoted(txt), "txt": txt}


def _keys(config: Any, domain: str) -> list[dict[str, str]]:
    keys = dkim.load_keys(dkim.keys_dir(config)).get(domain, [])
    return [_record(domain, k.selector, k.algorithm, dkim.txt_record(k.algorithm, dkim.public_from_private(k)))
            for k in keys]


def _keygen(config: Any, domain: str, selector: str, algorithm: str) -> dict[str, str]:
    try:
        _path, txt = dkim.write_key(dkim.keys_dir(config), domain, selector, algorithm)
    except FileExistsError:
        raise HttpError(409, "dkim_key_exists", f"{domain} has a {algorithm} key with selector {selector} already")
    except ValueError as exc:
        raise HttpError(400, "invalid_selector", str(exc))
    return _record(domain, selector, algorithm, txt)


def _dns(config: Any, domain: str, live: bool) -> list[dict[str, Any]]:
    from tau.cli import dnslive, dnsrecords

    rows = dnsrecords.all_records(config, [domain])
    items: list[dict[str, Any]] = [{"name": r.name, "type": r.type, "value": r.value, "policy": r.policy}
                                   for r in rows]
    if live:
        try:
            lookup = dnslive.Lookup(config.outbound.resolver)
        except (ImportError, ValueError, OSError) as exc:
            raise HttpError(503, "dns_unavailable", f"cannot look records up: {exc}")
        silent = False  # a DNS server that does not answer costs a timeout per record: ask once
        for item, row in zip(items, rows, strict=True):
            item["status"], item["detail"] = ("FAIL", "not checked: the DNS server did not answer") if silent \
                else dnslive.verdict(lookup, row)
            silent = silent or item["detail"] == NO_ANSWER
    return items


def _served(txn: Any, name: str) -> str:
    domain = accounts.normalize_domain(name)
    if not accounts.is_local_domain(txn, domain):
        raise accounts.AccountError("domain_not_found", f"no domain {domain}")
    return domain


def domain_routes(registry: Registry, run: Run, require_admin: Callable[[Any], Any]) -> Routes:
    config = registry.config

    async def local_domain(request: Any, name: str) -> str:
        require_admin(request)
        return str(await run("admin_domain_known", _served, name, readonly=True))

    async def list_keys(request: Any, name: str) -> Response:
        domain = await local_domain(request, name)
        items = await registry.run_in_thread(_keys, config, domain)
        return json_response({"items": items, "next_cursor": None})

    async def keygen(request: Any, name: str) -> Response:
        domain = await local_domain(request, name)
        body = await read_json_object(request)
        algorithm = body.get("algorithm") or config.dkim.algorithm
        if algorithm not in ("rsa", "ed25519"):
            raise HttpError(400, "invalid_algorithm", "algorithm is rsa or ed25519")
        selector = body.get("selector") or config.dkim.selector + ("-ed" if algorithm == "ed25519" else "")
        if not isinstance(selector, str):
            raise HttpError(400, "invalid_selector", "selector must be a string")
        return json_response(await registry.run_in_thread(_keygen, config, domain, selector, algorithm), 201)

    async def dns_check(request: Any, name: str) -> Response:
        domain = await local_domain(request, name)
        live = query_arg(request, "live") in ("1", "true", "yes")
        items = await registry.run_in_thread(_dns, config, domain, live)
        return json_response({"domain": domain, "live": live, "items": items,
                              "failing": sum(1 for i in items if i.get("status") == "FAIL")})

    base = "/api/admin/domains/{name}"
    return [("GET", base + "/dkim", list_keys), ("POST", base + "/dkim", keygen), ("GET", base + "/dns", dns_check)]
