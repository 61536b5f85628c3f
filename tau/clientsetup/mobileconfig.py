"""An Apple configuration profile (``.mobileconfig``) for iOS and macOS: one IMAP+SMTP mail
account, a CalDAV and a CardDAV account, for one address. No password is in it: the device asks.

Payload keys as in Apple's "Configuration Profile Reference" (``com.apple.mail.managed``,
``com.apple.caldav.account``, ``com.apple.carddav.account``). UUIDs are derived from the host and
the address, so the same address always gets the same profile (installing it again replaces the
accounts instead of adding copies) and an unknown user's profile looks like anyone's.

Signed (CMS/PKCS#7 SignedData with the content attached, what Apple's tools produce) with the
``[tls]`` certificate and key, so the device shows the server's name as the signer: :func:`sign`.
"""

from __future__ import annotations

import plistlib
import uuid
from pathlib import Path
from typing import Any

from tau.clientsetup.settings import ClientSettings

CONTENT_TYPE = "application/x-apple-aspen-config"


def _uuid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "tau-mobileconfig:" + ":".join(parts))).upper()


def _payload(kind: str, ident: str, name: str, settings: ClientSettings, address: str) -> dict[str, Any]:
    return {"PayloadType": kind, "PayloadVersion": 1, "PayloadIdentifier": ident,
            "PayloadUUID": _uuid(settings.hostname, address, kind), "PayloadDisplayName": name}


def _mail(settings: ClientSettings, address: str, base: str) -> dict[str, Any] | None:
    imap, smtp = settings.of("imap"), settings.of("smtp")
    if not imap or not smtp:
        return None
    incoming, outgoing = imap[0], smtp[0]  # implicit TLS first when both are configured
    payload = _payload("com.apple.mail.managed", f"{base}.mail", f"Mail ({address})", settings, address)
    payload.update({
        "EmailAccountDescription": address, "EmailAccountType": "EmailTypeIMAP", "EmailAddress": address,
        "IncomingMailServerHostName": incoming.host, "IncomingMailServerPortNumber": incoming.port,
        "IncomingMailServerUseSSL": True, "IncomingMailServerAuthentication": "EmailAuthPassword",
        "IncomingMailServerUsername": address,
        "OutgoingMailServerHostName": outgoing.host, "OutgoingMailServerPortNumber": outgoing.port,
        "OutgoingMailServerUseSSL": True, "OutgoingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingMailServerUsername": address, "OutgoingPasswordSameAsIncomingPassword": True,
    })
    return payload


def _dav(kind: str, settings: ClientSettings, address: str, base: str) -> dict[str, Any]:
    prefix = "CalDAV" if kind == "caldav" else "CardDAV"
    label = "Calendars" if kind == "caldav" else "Contacts"
    host, port, https = settings.web
    payload = _payload(f"com.apple.{kind}.account", f"{base}.{kind}", f"{label} ({address})", settings, address)
    payload.update({
        f"{prefix}AccountDescription": f"{label} {address}", f"{prefix}HostName": host,
        f"{prefix}Port": port, f"{prefix}UseSSL": https, f"{prefix}Username": address,
        f"{prefix}PrincipalURL": settings.principal_url(address),
    })
    return payload


def render(settings: ClientSettings, address: str, dav: dict[str, bool]) -> bytes:
    """The unsigned profile (an XML property list)."""
    domain = address.rpartition("@")[2]
    base = ".".join(reversed(settings.hostname.split("."))) + ".tau." + address.replace("@", ".at.")
    content = [p for p in [_mail(settings, address, base)] if p is not None]
    content += [_dav(kind, settings, address, base) for kind in ("caldav", "carddav") if dav.get(kind)]
    profile = {
        "PayloadType": "Configuration", "PayloadVersion": 1, "PayloadIdentifier": base,
        "PayloadUUID": _uuid(settings.hostname, address), "PayloadDisplayName": f"{address} on {domain}",
        "PayloadDescription": f"Mail, calendars and contacts of {address} on {settings.hostname}.",
        "PayloadOrganization": domain, "PayloadRemovalDisallowed": False, "PayloadContent": content,
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML)


def sign(profile: bytes, cert_path: Path, key_path: Path) -> bytes:
    """``profile`` as DER CMS SignedData (content attached) by the certificate chain in
    ``cert_path`` (leaf first) and its key. Blocking (file reads, a signature): run in a thread."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs7

    chain = x509.load_pem_x509_certificates(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    builder = pkcs7.PKCS7SignatureBuilder().set_data(profile).add_signer(
        chain[0], key, hashes.SHA256())  # type: ignore[arg-type]  # RSA/EC keys; tau.net.tls refuses others
    for extra in chain[1:]:
        builder = builder.add_certificate(extra)
    return builder.sign(serialization.Encoding.DER, [])

