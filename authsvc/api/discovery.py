"""RFC 8414 authorization server metadata (also served as openid-configuration)."""

from __future__ import annotations

import json
from functools import cache

from fastapi import APIRouter
from starlette.responses import Response

from authsvc.api.deps import ServicesDep
from authsvc.api.schemas import metadata_responses
from authsvc.grants import GRANT_TYPES
from authsvc.jose import ASYMMETRIC_ALGS

__all__ = ["metadata", "router"]

router = APIRouter()

_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
_ASSERTION_ALGS = sorted(ASYMMETRIC_ALGS - {"Ed25519"})


def metadata(issuer: str) -> dict[str, object]:
    return {
        "issuer": issuer,
        "token_endpoint": issuer + "/token",
        "jwks_uri": issuer + "/.well-known/jwks.json",
        "revocation_endpoint": issuer + "/revoke",
        "introspection_endpoint": issuer + "/introspect",
        "grant_types_supported": list(GRANT_TYPES),
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": [*_AUTH_METHODS, "none"],
        "token_endpoint_auth_signing_alg_values_supported": _ASSERTION_ALGS,
        "revocation_endpoint_auth_methods_supported": [*_AUTH_METHODS, "none"],
        "revocation_endpoint_auth_signing_alg_values_supported": _ASSERTION_ALGS,
        "introspection_endpoint_auth_methods_supported": _AUTH_METHODS,
        "introspection_endpoint_auth_signing_alg_values_supported": _ASSERTION_ALGS,
        "scopes_supported": [],
    }


@cache
def _body(issuer: str) -> bytes:
    return json.dumps(metadata(issuer), separators=(",", ":")).encode()


@router.get(
    "/.well-known/oauth-authorization-server",
    summary="Authorization server metadata (RFC 8414)",
    response_class=Response,
    responses=metadata_responses(),
)
async def oauth_metadata(services: ServicesDep) -> Response:
    return Response(
        _body(services.tokens.issuer),
        media_type="application/json",
        headers={"Cache-Control": "public, max-age=3600"},
    )


@router.get(
    "/.well-known/openid-configuration",
    summary="The same metadata, for clients that look here",
    response_class=Response,
    responses=metadata_responses(),
)
async def openid_configuration(services: ServicesDep) -> Response:
    return await oauth_metadata(services)
