"""``tau check``: does ``[tau] public_url`` answer? Every link tau makes (share, call, invitation,
digest, the OAuth issuer, the DAV URLs in client profiles) starts with it, so one that nobody can
open is worth a warning (never a failure: the daemon may simply not be running yet)."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from typing import Any

TIMEOUT = 3.0


def probe(url: str, timeout: float = TIMEOUT) -> tuple[bool, str]:
    """``(answered, text)`` for an HTTP GET of ``url``'s health endpoint."""
    target = url.rstrip("/") + "/api/health"
    request = urllib.request.Request(target, headers={"User-Agent": "tau-check"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the operator's URL
            return True, f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return True, f"HTTP {exc.code}"
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ssl.SSLCertVerificationError):
            return False, f"answers, but its certificate is not trusted ({reason.verify_message})"
        return False, f"does not answer ({reason})"
    except (OSError, ValueError) as exc:
        return False, f"does not answer ({exc})"


def check(config: Any, report: Any) -> None:
    configured = config.tau.public_url.strip()
    url = (configured or f"https://{config.tau.hostname}").rstrip("/")
    answered, text = probe(url)
    note = "" if configured else " ([tau] public_url is not set: links use https://HOSTNAME)"
    if answered and configured:
        report.line("ok", "links", f"{url} answers ({text})")
    elif answered:
        report.line("warn", "links", f"{url} answers ({text}){note}")
    else:
        report.line("warn", "links", f"{url} {text}: links in mail, shares and invitations will not open{note}")
