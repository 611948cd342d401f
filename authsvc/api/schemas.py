"""OpenAPI descriptions of the wire formats (form bodies, token and error bodies)."""

from __future__ import annotations

from typing import Any

__all__ = ["TOKEN_ERRORS", "error_schema", "form_body", "token_response_schema"]


def form_body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {"type": "object", "properties": properties, "required": required}
                }
            },
        }
    }


def error_schema(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
                    "required": ["error"],
                }
            }
        },
    }


def token_response_schema() -> dict[str, Any]:
    return {
        "description": "Tokens (RFC 6749 §5.1)",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "access_token": {"type": "string"},
                        "token_type": {"type": "string", "enum": ["Bearer"]},
                        "expires_in": {"type": "integer"},
                        "scope": {"type": "string"},
                        "refresh_token": {"type": "string"},
                    },
                    "required": ["access_token", "token_type", "expires_in", "scope"],
                }
            }
        },
    }


TOKEN_ERRORS: dict[int | str, dict[str, Any]] = {
    400: error_schema("RFC 6749 §5.2 error"),
    401: error_schema("invalid_client"),
    413: error_schema("request body too large"),
    429: error_schema("too many failed logins"),
    503: error_schema("temporarily unavailable"),
}
