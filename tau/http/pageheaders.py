"""The security headers of tau's own HTML pages (admin dashboard, call page, DAV folder index).

A strict Content-Security-Policy: script only from this origin's static files (no inline script,
no ``eval``), no ``<base>`` rewriting, forms post only here, never framed; no Referer leaves the
page (tokens and share links stay out of other sites' logs); no MIME sniffing.
The OAuth consent page keeps its own literal copy in ``tau.http.consent.PAGE_HEADERS``.
"""

from __future__ import annotations

DIRECTIVES = {"default-src": "'none'", "script-src": "'self'", "style-src": "'self'", "img-src": "'self'",
              "connect-src": "'self'", "base-uri": "'none'", "form-action": "'self'", "frame-ancestors": "'none'"}


def csp(**sources: str) -> str:
    """The strict policy; ``media_src="'self' blob:"`` adds or widens one directive (not script-src)."""
    directives = dict(DIRECTIVES)
    for key, value in sources.items():
        name = key.replace("_", "-")
        if name == "script-src":
            raise ValueError("script-src stays 'self'")
        directives[name] = value
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def page_headers(**sources: str) -> dict[str, str]:
    """Headers for one of tau's HTML pages (see ``csp`` for ``sources``)."""
    return {"Content-Security-Policy": csp(**sources), "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"}
