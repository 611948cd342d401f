"""RFC 8414 authorization server metadata, which is also OpenID Connect Discovery 1.0 metadata
(served at both well-known paths: one document, so the two can never disagree)."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response

from authsvc.api.routes import Endpoint
from authsvc.api.schemas import metadata_responses
from authsvc.browser.requests import OIDC_SCOPES
from authsvc.dpop import DPOP_ALGS
from authsvc.grants import GRANT_TYPES
from authsvc.jose import ASYMMETRIC_ALGS

__all__ = ["DISCOVERY_PATHS", "OAUTH_ENDPOINT", "OPENID_ENDPOINT", "MetadataEndpoint", "metadata"]

_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
#: RFC 9864's fully specified ``Ed25519`` is accepted wherever ``EdDSA`` is (oauth4webapi sends it).
_ASSERTION_ALGS = sorted(ASYMMETRIC_ALGS)
#: What this service's keys sign with (AUTHSVC_SIGNING_ALG; Ed25519 keys sign as EdDSA).
_SIGNING_ALGS = ["RS256", "PS256", "ES256", "EdDSA"]
_CLAIMS = [
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "sid",
    "at_hash",
    "preferred_username",
    "name",
    "email",
    "email_verified",
]


def metadata(issuer: str) -> dict[str, object]:
    return {
        "issuer": issuer,
        "token_endpoint": issuer + "/token",
        "jwks_uri": issuer + "/.well-known/jwks.json",
        "revocation_endpoint": issuer + "/revoke",
        "introspection_endpoint": issuer + "/introspect",
        "authorization_endpoint": issuer + "/authorize",
        "pushed_authorization_request_endpoint": issuer + "/par",
        "require_pushed_authorization_requests": False,
        "userinfo_endpoint": issuer + "/userinfo",
        "end_session_endpoint": issuer + "/logout",
        "grant_types_supported": list(GRANT_TYPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": _SIGNING_ALGS,
        "prompt_values_supported": ["none", "login", "consent"],
        "claims_supported": _CLAIMS,
        "dpop_signing_alg_values_supported": list(DPOP_ALGS),
        "token_endpoint_auth_methods_supported": [*_AUTH_METHODS, "none"],
        "token_endpoint_auth_signing_alg_values_supported": _ASSERTION_ALGS,
        "revocation_endpoint_auth_methods_supported": [*_AUTH_METHODS, "none"],
        "revocation_endpoint_auth_signing_alg_values_supported": _ASSERTION_ALGS,
        "introspection_endpoint_auth_methods_supported": _AUTH_METHODS,
        "introspection_endpoint_auth_signing_alg_values_supported": _ASSERTION_ALGS,
        "scopes_supported": sorted(OIDC_SCOPES),
    }


class MetadataEndpoint:
    """The metadata document: prebuilt bytes (it changes only with the issuer)."""

    def __init__(self, issuer: str) -> None:
        self.body = json.dumps(metadata(issuer), separators=(",", ":")).encode()

    async def __call__(self, request: Request) -> Response:
        return Response(
            self.body, media_type="application/json", headers={"Cache-Control": "public, max-age=3600"}
        )


DISCOVERY_PATHS = ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration")

OAUTH_ENDPOINT = Endpoint(
    DISCOVERY_PATHS[0],
    {"get": {"summary": "Authorization server metadata (RFC 8414)", "responses": metadata_responses()}},
    build=lambda services, _metrics: MetadataEndpoint(services.tokens.issuer),
)
OPENID_ENDPOINT = Endpoint(
    DISCOVERY_PATHS[1],
    {"get": {"summary": "The same metadata, for clients that look here", "responses": metadata_responses()}},
    build=lambda services, _metrics: MetadataEndpoint(services.tokens.issuer),
)
