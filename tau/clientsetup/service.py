"""Install the auto-setup endpoints on the HTTP core (none needs a login; none reveals an account):

- ``GET /.well-known/autoconfig/mail/config-v1.1.xml`` and ``GET /mail/config-v1.1.xml``
  (``?emailaddress=``, else the domain from ``Host: autoconfig.DOMAIN``): Thunderbird;
- ``GET|POST /autodiscover/autodiscover.xml`` (also ``/Autodiscover/Autodiscover.xml``): Outlook POX;
- ``GET /mobileconfig?emailaddress=ADDR``: the Apple profile, signed with the ``[tls]`` certificate;
- ``GET /.well-known/mta-sts.txt`` with ``Host: mta-sts.DOMAIN``: the MTA-STS policy (RFC 8461).

A domain this tau does not serve is 404 ``unknown_domain``; any address of a served domain gets
the same answer, whether or not the user exists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cryptography.exceptions import UnsupportedAlgorithm

from tau.auth import accounts
from tau.clientsetup import autoconfig, autodiscover, mobileconfig
from tau.clientsetup.settings import ClientSettings, client_settings, mta_sts_policy, served_domain
from tau.http.errors import HttpError
from tau.http.router import Response

if TYPE_CHECKING:
    from tau.registry import Registry

AUTOCONFIG_PATHS = ("/.well-known/autoconfig/mail/config-v1.1.xml", "/mail/config-v1.1.xml")
AUTODISCOVER_PATHS = ("/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml")


def _arg(request: Any, *names: bytes) -> str:
    for name in names:
        values = request.args.get(name)
        if values:
            return str(values[0].decode("utf-8", "replace")).strip()
    return ""


def _host(request: Any) -> str:
    return str((request.getHeader(b"host") or b"").decode("latin-1"))


class ClientSetup:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    @property
    def settings(self) -> ClientSettings:
        return client_settings(self.registry.config)

    @property
    def dav(self) -> dict[str, bool]:
        return {"caldav": self.registry.serving("calendar"), "carddav": self.registry.serving("contacts")}

    async def served(self, domain: str) -> str:
        """``domain`` normalised when tau serves mail for it; 404 otherwise."""
        try:
            name = accounts.normalize_domain(domain) if domain else ""
        except accounts.AccountError:
            name = ""
        served: bool = bool(name) and await self.registry.db.run(
            "clientsetup_domain", accounts.is_local_domain, name, readonly=True)
        if served:
            return name
        raise HttpError(404, "unknown_domain", "this server does not serve mail for that domain")

    async def address(self, request: Any, text: str, host_prefix: str) -> tuple[str, str]:
        """``(address or "", domain)`` from an email address, else from the Host header."""
        if text:
            try:
                address = accounts.normalize_address(text)
            except accounts.AccountError:
                raise HttpError(400, "invalid_address", "emailaddress must be a mail address")
            return address, await self.served(address.rpartition("@")[2])
        return "", await self.served(served_domain(_host(request), host_prefix))

    async def thunderbird(self, request: Any) -> Response:
        _, domain = await self.address(request, _arg(request, b"emailaddress"), "autoconfig.")
        return Response(autoconfig.render(self.settings, domain, self.dav), 200, "application/xml; charset=utf-8")

    async def outlook(self, request: Any) -> Response:
        schema = autodiscover.OUTLOOK_NS
        text = _arg(request, b"emailaddress", b"Email")
        if request.method == b"POST":
            request.content.seek(0)
            try:
                text, schema = autodiscover.parse_request(request.content.read())
            except autodiscover.BadRequest as exc:
                raise HttpError(400, "invalid_xml", str(exc))
        if not text:
            raise HttpError(400, "invalid_address", "give ?emailaddress=ADDRESS or POST an Autodiscover request")
        address, _ = await self.address(request, text, "")
        if schema != autodiscover.OUTLOOK_NS:
            body = autodiscover.render_error("600", "Invalid Request")
        else:
            body = autodiscover.render(self.settings, address)
        return Response(body, 200, "text/xml; charset=utf-8")

    async def apple(self, request: Any) -> Response:
        text = _arg(request, b"emailaddress")
        if not text:
            raise HttpError(400, "invalid_address", "give ?emailaddress=ADDRESS")
        address, _ = await self.address(request, text, "")
        profile = mobileconfig.render(self.settings, address, self.dav)
        tls = self.registry.config.tls
        config = self.registry.config
        try:
            profile = await self.registry.run_in_thread(
                mobileconfig.sign, profile, config.data_path(tls.certificate), config.data_path(tls.private_key))
        except (OSError, ValueError, TypeError, UnsupportedAlgorithm):
            pass  # no usable certificate: the device shows the profile as unsigned
        name = address.replace("@", "_at_")
        return Response(profile, 200, mobileconfig.CONTENT_TYPE,
                        {"Content-Disposition": f'attachment; filename="{name}.mobileconfig"'})

    async def mta_sts(self, request: Any) -> Response:
        host = served_domain(_host(request))
        if not host.startswith("mta-sts."):
            raise HttpError(404, "not_found", "the MTA-STS policy is served on mta-sts.DOMAIN")
        await self.served(host[len("mta-sts."):])
        return Response(mta_sts_policy(self.registry.config).encode(), 200, "text/plain; charset=utf-8")


def install(registry: Registry, host: Any) -> None:
    setup, http = ClientSetup(registry), host.http
    for path in AUTOCONFIG_PATHS:
        http.route("GET", path, setup.thunderbird, auth="none")
    for path in AUTODISCOVER_PATHS:
        http.route("GET", path, setup.outlook, auth="none")
        http.route("POST", path, setup.outlook, auth="none")
    http.route("GET", "/mobileconfig", setup.apple, auth="none")
    http.route("GET", "/.well-known/mta-sts.txt", setup.mta_sts, auth="none")
    registry.services["clientsetup"] = "ok"
