"""The table itself: every endpoint of the service, in routing order.

The JWKS comes first (the most requested path, matched first), then the
token endpoint; the order is otherwise that of the OpenAPI document.
"""

from __future__ import annotations

from authsvc.api import (
    authorize,
    discovery,
    health,
    introspect,
    jwks,
    logout,
    par,
    revoke,
    token,
    userinfo,
    users,
)
from authsvc.api.routes import Endpoint

__all__ = ["ENDPOINTS", "PATHS"]

ENDPOINTS: tuple[Endpoint, ...] = (
    jwks.ENDPOINT,
    token.ENDPOINT,
    revoke.ENDPOINT,
    introspect.ENDPOINT,
    users.ENDPOINT,
    authorize.ENDPOINT,
    par.ENDPOINT,
    userinfo.ENDPOINT,
    logout.ENDPOINT,
    discovery.OAUTH_ENDPOINT,
    discovery.OPENID_ENDPOINT,
    health.HEALTHZ,
    health.READYZ,
    health.METRICS,
)
#: Every path the service answers (the metrics' route labels; anything else is "other").
PATHS: frozenset[str] = frozenset({endpoint.path for endpoint in ENDPOINTS} | {"/openapi.json"})
