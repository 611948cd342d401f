"""OpenAPI descriptions of the wire formats (form bodies, token and error bodies).

The handlers write their bodies by hand (RFC 6749 needs exact members and
headers), so these are the document's only source: tests/test_fuzz_openapi.py
holds every answer the service gives against them.
"""

from __future__ import annotations

from typing import Any

from authsvc.api.form import MAX_FIELD
from authsvc.errors import TOKEN_ERROR_CODES

__all__ = [
    "BEARER_ERRORS",
    "CLIENT_AUTH",
    "CLIENT_ERRORS",
    "CLIENT_PARAMETERS",
    "SECURITY_SCHEMES",
    "TOKEN_ERRORS",
    "USER_AUTH",
    "error_schema",
    "form_body",
    "health_responses",
    "introspection_response_schema",
    "jwks_responses",
    "metadata_responses",
    "metrics_responses",
    "readiness_responses",
    "revocation_response_schema",
    "token_response_schema",
]

_NO_STORE_HEADERS = {
    "Cache-Control": {"schema": {"type": "string", "enum": ["no-store"]}},
    "Pragma": {"schema": {"type": "string", "enum": ["no-cache"]}},
}

SECURITY_SCHEMES: dict[str, Any] = {
    "client_secret_basic": {
        "type": "http",
        "scheme": "basic",
        "description": "RFC 6749 §2.3.1: client_id and secret, each form-encoded, then Basic. "
        "client_secret_post and private_key_jwt go in the form body instead.",
    },
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "RFC 6750"},
}
# Client authentication is optional where a public client may name itself in the body.
CLIENT_AUTH: dict[str, Any] = {"security": [{"client_secret_basic": []}, {}]}
#: The form parameters of client authentication (RFC 6749 §2.3.1, RFC 7523 §2.2).
CLIENT_PARAMETERS: dict[str, Any] = {
    "client_id": {"type": "string"},
    "client_secret": {"type": "string"},
    "client_assertion": {"type": "string"},
    "client_assertion_type": {"type": "string"},
}
USER_AUTH: dict[str, Any] = {"security": [{"bearer": []}]}


def form_body(properties: dict[str, Any], required: list[str], **extra: Any) -> dict[str, Any]:
    """An ``application/x-www-form-urlencoded`` body; each value is at most MAX_FIELD characters."""
    bounded = {name: {"maxLength": MAX_FIELD, **schema} for name, schema in properties.items()}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {"type": "object", "properties": bounded, "required": required}
                }
            },
        },
        **extra,
    }


def error_schema(
    description: str, codes: list[str] | None = None, headers: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An RFC 6749 §5.2 / RFC 6750 error body; ``codes`` are the ``error`` values it may carry."""
    error: dict[str, Any] = {"type": "string"}
    if codes:
        error["enum"] = codes
    response: dict[str, Any] = {
        "description": description,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"error": error, "error_description": {"type": "string"}},
                    "required": ["error", "error_description"],
                }
            }
        },
    }
    if headers:
        response["headers"] = headers
    return response


def _required_header(description: str) -> dict[str, Any]:
    return {"description": description, "required": True, "schema": {"type": "string"}}


def token_response_schema() -> dict[str, Any]:
    return {
        "description": "Tokens (RFC 6749 §5.1); refresh_token for the password and refresh grants only",
        "headers": {name: {**value, "required": True} for name, value in _NO_STORE_HEADERS.items()},
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "access_token": {"type": "string"},
                        "token_type": {"type": "string", "enum": ["Bearer"]},
                        "expires_in": {"type": "integer", "minimum": 1},
                        "scope": {"type": "string"},
                        "refresh_token": {"type": "string"},
                    },
                    "required": ["access_token", "token_type", "expires_in", "scope"],
                    "additionalProperties": False,
                }
            }
        },
    }


def revocation_response_schema() -> dict[str, Any]:
    return {
        "description": "Revoked, or not a live token of ours (RFC 7009 §2.2): an empty body",
        "headers": _NO_STORE_HEADERS,
    }


def introspection_response_schema() -> dict[str, Any]:
    string = {"type": "string"}
    number = {"type": "number"}
    return {
        "description": 'Token state (RFC 7662 §2.2): {"active": false} for anything not live',
        "headers": _NO_STORE_HEADERS,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "active": {"type": "boolean"},
                        "token_use": {"type": "string", "enum": ["access_token", "refresh_token"]},
                        "token_type": {"type": "string", "enum": ["Bearer"]},
                        "scope": string,
                        "client_id": string,
                        "username": string,
                        "sub": string,
                        "aud": {"oneOf": [string, {"type": "array", "items": string}]},
                        "iss": string,
                        "jti": string,
                        "sid": string,
                        "exp": number,
                        "iat": number,
                        "nbf": number,
                    },
                    "required": ["active"],
                    "additionalProperties": False,
                    "if": {"properties": {"active": {"const": False}}},
                    "then": {"maxProperties": 1},
                    "else": {"required": ["active", "token_use", "client_id", "sub", "exp", "iat"]},
                }
            }
        },
    }


_UNAVAILABLE = error_schema(
    "The database or the key store is unavailable", ["temporarily_unavailable"], _NO_STORE_HEADERS
)
_TOO_LARGE = error_schema("The request body is over 64 KiB", ["invalid_request"])
_HEADERS_TOO_LARGE = error_schema("The request headers are over 64 KiB in all", ["invalid_request"])

_RETRY_AFTER = {"Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 1}}}
# /revoke and /introspect: RFC 6749 errors, client authentication and its failure limit,
# size, availability.
CLIENT_ERRORS: dict[int | str, dict[str, Any]] = {
    400: error_schema("RFC 6749 §5.2 error", list(TOKEN_ERROR_CODES), _NO_STORE_HEADERS),
    401: error_schema(
        "Client authentication failed",
        ["invalid_client"],
        {"WWW-Authenticate": _required_header('Basic realm="authsvc"')},
    ),
    413: _TOO_LARGE,
    429: error_schema(
        "Too many failed client authentications from this address", ["invalid_client"], _RETRY_AFTER
    ),
    431: _HEADERS_TOO_LARGE,
    503: _UNAVAILABLE,
}
# /token adds the login limits.
TOKEN_ERRORS: dict[int | str, dict[str, Any]] = {
    **CLIENT_ERRORS,
    429: error_schema(
        "Too many failed logins (invalid_grant) or client authentications (invalid_client)",
        ["invalid_grant", "invalid_client"],
        _RETRY_AFTER,
    ),
}
# Routes protected by an access token (RFC 6750 §3).
BEARER_ERRORS: dict[int | str, dict[str, Any]] = {
    400: error_schema(
        "A malformed Bearer request: two Authorization headers, or an empty credential",
        ["invalid_request"],
        {"WWW-Authenticate": _required_header('Bearer challenge with error="invalid_request"')},
    ),
    401: error_schema(
        "No access token (invalid_request), or an invalid, expired or revoked one (invalid_token)",
        ["invalid_request", "invalid_token"],
        {"WWW-Authenticate": _required_header("Bearer challenge (RFC 6750 §3)")},
    ),
    431: _HEADERS_TOO_LARGE,
    503: _UNAVAILABLE,
}


def jwks_responses() -> dict[int | str, dict[str, Any]]:
    cache_headers = {
        "Cache-Control": _required_header("public, max-age=N; N shrinks ahead of a key change"),
        "ETag": _required_header("hash of the body"),
    }
    return {
        200: {
            "description": "The published public keys (RFC 7517)",
            "headers": cache_headers,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "keys": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "kty": {"type": "string", "enum": ["RSA", "OKP", "EC"]},
                                        "kid": {"type": "string"},
                                        "alg": {"type": "string"},
                                        "use": {"type": "string", "enum": ["sig"]},
                                    },
                                    "required": ["kty", "kid", "alg", "use"],
                                    "not": {
                                        "anyOf": [
                                            {"required": ["d"]},
                                            {"required": ["p"]},
                                            {"required": ["q"]},
                                        ]
                                    },
                                },
                            }
                        },
                        "required": ["keys"],
                        "additionalProperties": False,
                    }
                }
            },
        },
        304: {"description": "If-None-Match matched the ETag", "headers": cache_headers},
        503: _UNAVAILABLE,
    }


def metadata_responses() -> dict[int | str, dict[str, Any]]:
    url = {"type": "string"}
    strings = {"type": "array", "items": {"type": "string"}}
    return {
        200: {
            "description": "RFC 8414 authorization server metadata",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "issuer": url,
                            "token_endpoint": url,
                            "jwks_uri": url,
                            "revocation_endpoint": url,
                            "introspection_endpoint": url,
                            "grant_types_supported": strings,
                            "response_types_supported": strings,
                            "token_endpoint_auth_methods_supported": strings,
                            "scopes_supported": strings,
                        },
                        "required": [
                            "issuer",
                            "token_endpoint",
                            "jwks_uri",
                            "revocation_endpoint",
                            "introspection_endpoint",
                            "grant_types_supported",
                            "response_types_supported",
                        ],
                    }
                }
            },
        }
    }


def health_responses() -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "description": "The process answers",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {"status": {"type": "string", "enum": ["ok"]}},
                        "required": ["status"],
                    }
                }
            },
        }
    }


def readiness_responses() -> dict[int | str, dict[str, Any]]:
    def body(status: str) -> dict[str, Any]:
        return {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "status": {"type": "string", "enum": [status]},
                        "database": {"type": "string"},
                        "key_store": {"type": "string"},
                        "signing_kid": {"type": ["string", "null"]},
                        "rotation_overdue": {"type": "boolean"},
                        "unloadable_keys": {"type": "array", "items": {"type": "string"}},
                        "standby_kid": {"type": ["string", "null"]},
                        "redis": {"type": "string"},
                    },
                    "required": ["status", "database", "key_store"],
                }
            }
        }

    return {
        200: {"description": "Database and key store usable", "content": body("ready")},
        503: {
            "description": "Database or key store unusable (Redis never is a reason)",
            "content": body("not ready"),
        },
    }


def metrics_responses() -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "description": "Prometheus text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    }
