"""``/docs``: Swagger UI for the public OpenAPI document (``AUTHSVC_DOCS=true``; off: 404).

The page and its two assets come from the installed ``swagger-ui-bundle-v2``
package, served from this origin: no script from a third party runs on the
issuer's origin (where the sign-in cookies live). The page's policy allows
scripts and styles from this origin only (the one inline script by nonce),
fetches to this origin (the document, "Try it out"), and no framing. URLs are
relative, so the page works under an issuer path (``/auth/docs``).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

__all__ = ["DOCS_PATH", "docs_routes"]

DOCS_PATH = "/docs"
_ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css"}

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script nonce="{nonce}">
window.ui = SwaggerUIBundle({{
  url: "openapi.json", dom_id: "#swagger-ui", validatorUrl: null, deepLinking: false
}});
</script>
</body>
</html>
"""


def _policy(nonce: str) -> str:
    # Scripts and styles from this origin, and the one inline script by its nonce. (Swagger UI
    # sets element styles through the DOM, which style-src does not govern: no 'unsafe-inline'.)
    return (
        f"default-src 'none'; script-src 'self' 'nonce-{nonce}'; style-src 'self'; "
        "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    )


def _asset(body: bytes, media_type: str) -> Callable[[Request], Awaitable[Response]]:
    headers = {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}

    async def asset(_request: Request) -> Response:
        return Response(body, media_type=media_type, headers=headers)

    return asset


def docs_routes(title: str) -> list[Route]:
    """The page and its assets (read once, here: only when ``AUTHSVC_DOCS`` is on)."""
    from swagger_ui_bundle import swagger_ui_path

    async def page(_request: Request) -> Response:
        nonce = secrets.token_urlsafe(18)
        return HTMLResponse(
            _PAGE.format(title=escape(title), nonce=nonce),
            headers={
                "Content-Security-Policy": _policy(nonce),
                "X-Frame-Options": "DENY",
                "Referrer-Policy": "no-referrer",
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-store",
            },
        )

    routes = [Route(DOCS_PATH, page, methods=["GET"])]
    for name, media_type in _ASSETS.items():
        body = (swagger_ui_path / name).read_bytes()
        routes.append(Route(f"{DOCS_PATH}/{name}", _asset(body, media_type), methods=["GET"]))
    return routes
