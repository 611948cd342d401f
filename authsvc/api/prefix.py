"""An issuer with a path (``AUTHSVC_ISSUER=https://example.com/auth``): where a request goes.

Every endpoint is then served under the issuer's path — ``/auth/token``,
``/auth/.well-known/jwks.json``, ``/auth/.well-known/openid-configuration``
(OpenID Connect Discovery 1.0 §4: appended) — and the RFC 8414 document also
at ``/.well-known/oauth-authorization-server/auth`` (RFC 8414 §3: the
well-known part inserted between the host and the path). The OpenID document
is served at its inserted place too, where some clients look first.

The prefix is taken off before routing, so the routes, the middlewares and
every handler see the same paths (``/token``) whatever the issuer: a URL the
service builds is the issuer plus the route path, never the issuer plus the
request's own path (which would double the prefix). A path outside the prefix
is a 404, as is the prefix itself.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import Scope

from authsvc.api.discovery import DISCOVERY_PATHS

__all__ = ["IssuerPrefix", "issuer_path"]

#: Matches no route (every route starts with "/"): what a path outside the prefix becomes.
_NOWHERE = ""


def issuer_path(issuer: str) -> str:
    """The path of an issuer: ``""`` for a bare origin, else ``/auth`` (no trailing ``/``)."""
    return urlsplit(issuer).path


class IssuerPrefix:
    """Maps a request path under the issuer's path to its route path."""

    def __init__(self, issuer: str) -> None:
        self.path = issuer_path(issuer)
        self._inserted = {well_known + self.path: well_known for well_known in DISCOVERY_PATHS}

    def route(self, path: str) -> str:
        """The route path of a request path (``""``, which matches no route, when outside)."""
        prefix = self.path
        if path.startswith(prefix) and path[len(prefix) : len(prefix) + 1] == "/":
            return path[len(prefix) :]
        return self._inserted.get(path, _NOWHERE)

    def scope(self, scope: Scope) -> Scope:
        """An HTTP scope with its path made the route path (``raw_path`` dropped with it)."""
        routed = dict(scope)
        routed["path"] = self.route(scope["path"])
        routed.pop("raw_path", None)
        return routed
