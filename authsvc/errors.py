"""The one error hierarchy of authsvc.

    AuthsvcError                      base of everything we raise on purpose
    ├── ConfigError                   a bad setting; the program stops with one line
    ├── KeyStoreError                 the key store is missing, empty or unreadable
    ├── StorageUnavailable            the database cannot be reached (one line; 503 in the server)
    └── OAuthError                    RFC 6749 §5.2 / RFC 6750 errors sent to clients
        ├── InvalidRequest            400 invalid_request
        ├── InvalidClient             401 invalid_client + WWW-Authenticate: Basic
        │   └── ClientAuthRateLimited 429 invalid_client + Retry-After
        ├── InvalidGrant              400 invalid_grant
        │   └── LoginRateLimited      429 invalid_grant + Retry-After
        ├── UnauthorizedClient        400 unauthorized_client
        ├── UnsupportedGrantType      400 unsupported_grant_type
        ├── InvalidScope              400 invalid_scope
        ├── MissingToken              401 + a bare Bearer challenge (RFC 6750 §3.1)
        ├── InvalidBearerRequest      400 invalid_request (RFC 6750)
        ├── InvalidTokenError         401 invalid_token (RFC 6750)
        ├── InsufficientScope         403 insufficient_scope (RFC 6750)
        ├── RequestTooLarge           413 invalid_request
        └── TemporarilyUnavailable    503 temporarily_unavailable

Each OAuthError subclass fixes its public ``error`` code, ``status_code`` and
default ``description``; a raise site may pick another fixed description (it
may name a parameter, never echo input). ``detail`` goes to logs only — the
``error_description`` / ``error_detail`` split of node-oidc-provider.
"""

from __future__ import annotations

from typing import ClassVar

from authsvc.rfc6750 import challenge

__all__ = [
    "TOKEN_ERROR_CODES",
    "AuthsvcError",
    "ClientAuthRateLimited",
    "ConfigError",
    "DpopResourceError",
    "InsufficientScope",
    "InvalidBearerRequest",
    "InvalidClient",
    "InvalidDpopProof",
    "InvalidGrant",
    "InvalidRequest",
    "InvalidScope",
    "InvalidTokenError",
    "KeyStoreError",
    "LoginRateLimited",
    "MissingToken",
    "OAuthError",
    "RequestTooLarge",
    "StorageUnavailable",
    "TemporarilyUnavailable",
    "UnauthorizedClient",
    "UnsupportedGrantType",
    "UseDpopNonce",
]


class AuthsvcError(Exception):
    """Base of every error authsvc raises on purpose."""


class ConfigError(AuthsvcError):
    """A setting is invalid. ``str()`` is the one line the program prints."""


class KeyStoreError(AuthsvcError):
    """The key store cannot be used (missing, empty, unreadable, locked)."""


class StorageUnavailable(AuthsvcError):
    """The database cannot be reached right now; ``str()`` names the setting and the host."""


class OAuthError(AuthsvcError):
    """An error with a public RFC 6749 / RFC 6750 code."""

    error: ClassVar[str] = "server_error"
    status_code: ClassVar[int] = 500
    description: ClassVar[str] = "The server could not complete the request."

    def __init__(self, description: str | None = None, *, detail: str = "") -> None:
        self.public_description = description or self.description
        self.detail = detail
        super().__init__(f"{self.error}: {self.public_description}" + (f" ({detail})" if detail else ""))

    def headers(self) -> dict[str, str]:
        """Extra response headers this error needs."""
        return {}

    def body(self) -> dict[str, str]:
        """The RFC 6749 §5.2 JSON body."""
        return {"error": self.error, "error_description": self.public_description}


class InvalidRequest(OAuthError):
    error = "invalid_request"
    status_code = 400
    description = "The request is missing a required parameter or is otherwise malformed."


class RequestTooLarge(InvalidRequest):
    status_code = 413
    description = "The request body is too large."


class InvalidClient(OAuthError):
    error = "invalid_client"
    status_code = 401
    description = "Client authentication failed."

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Basic realm="authsvc"'}


class ClientAuthRateLimited(InvalidClient):
    """Too many failed client authentications from this address (CONTRACT.md, Trust rules)."""

    status_code = 429
    description = "Too many failed client authentications; try again later."

    def __init__(self, retry_after: int, *, detail: str = "") -> None:
        super().__init__(detail=detail)
        self.retry_after = max(1, int(retry_after))

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class InvalidGrant(OAuthError):
    error = "invalid_grant"
    status_code = 400
    description = "The grant is invalid, expired or revoked."


class LoginRateLimited(InvalidGrant):
    status_code = 429
    description = "Too many failed logins; try again later."

    def __init__(self, retry_after: int, *, detail: str = "") -> None:
        super().__init__(detail=detail)
        self.retry_after = max(1, int(retry_after))

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"
    status_code = 400
    description = "The client is not allowed to use this grant type."


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"
    status_code = 400
    description = "The grant type is not supported."


class InvalidScope(OAuthError):
    error = "invalid_scope"
    status_code = 400
    description = "The requested scope is invalid or exceeds what is allowed."


class _BearerError(OAuthError):
    """RFC 6750 errors carry their code in ``WWW-Authenticate: Bearer``."""

    scope: str | None = None

    def headers(self) -> dict[str, str]:
        value = challenge("authsvc", error=self.error, description=self.public_description, scope=self.scope)
        return {"WWW-Authenticate": value}


class MissingToken(_BearerError):
    """No Bearer credentials at all: 401 with a bare challenge (RFC 6750 §3.1)."""

    error = "invalid_request"
    status_code = 401
    description = "An access token is required."

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": challenge("authsvc")}


class InvalidBearerRequest(_BearerError):
    """A malformed Bearer request (two Authorization headers, an empty credential)."""

    error = "invalid_request"
    status_code = 400
    description = "The Bearer request is malformed."


class InvalidTokenError(_BearerError):
    error = "invalid_token"
    status_code = 401
    description = "The access token is invalid, expired or revoked."


class InsufficientScope(_BearerError):
    error = "insufficient_scope"
    status_code = 403
    description = "The access token lacks a required scope."

    def __init__(self, scope: str, *, detail: str = "") -> None:
        super().__init__(detail=detail)
        self.scope = scope


class InvalidDpopProof(OAuthError):
    """A DPoP proof refused at the token endpoint or /par (RFC 9449 §5)."""

    error = "invalid_dpop_proof"
    status_code = 400
    description = "The DPoP proof is invalid."


class UseDpopNonce(InvalidDpopProof):
    """The proof lacks a current server nonce (RFC 9449 §8): retry with the one in ``DPoP-Nonce``."""

    error = "use_dpop_nonce"
    description = "Use the server-provided DPoP nonce."

    def __init__(self, nonce: str, *, detail: str = "") -> None:
        super().__init__(detail=detail)
        self.nonce = nonce

    def headers(self) -> dict[str, str]:
        return {"DPoP-Nonce": self.nonce}


class DpopResourceError(OAuthError):
    """A refusal at a protected route for a request using the DPoP scheme (RFC 9449 §7.1):
    401 with a ``DPoP`` challenge naming the error and the algorithms accepted."""

    status_code = 401
    algs: ClassVar[str] = "ES256 EdDSA Ed25519 RS256 PS256"

    def __init__(
        self, error: str, description: str, *, nonce: str | None = None, status: int = 401, detail: str = ""
    ) -> None:
        super().__init__(description, detail=detail)
        self.dpop_error = error
        self.nonce = nonce
        self.status_code = status  # type: ignore[misc]  # 400 for a malformed DPoP request

    def body(self) -> dict[str, str]:
        return {"error": self.dpop_error, "error_description": self.public_description}

    def headers(self) -> dict[str, str]:
        value = (
            f'DPoP error="{self.dpop_error}", error_description="{self.public_description}", '
            f'algs="{self.algs}"'
        )
        headers = {"WWW-Authenticate": value}
        if self.nonce is not None:
            headers["DPoP-Nonce"] = self.nonce
        return headers


class TemporarilyUnavailable(OAuthError):
    error = "temporarily_unavailable"
    status_code = 503
    description = "The service is temporarily unavailable; try again later."


#: The RFC 6749 §5.2 codes a token (or revocation/introspection) request's 400 can carry.
TOKEN_ERROR_CODES: tuple[str, ...] = tuple(
    e.error
    for e in (
        InvalidRequest,
        InvalidClient,
        InvalidGrant,
        UnauthorizedClient,
        UnsupportedGrantType,
        InvalidScope,
    )
)
