"""Reading an authorization request (RFC 6749 §4.1.1, RFC 7636, OpenID Connect Core §3.1.2.1).

Checks come in two tiers. Until the client and its redirect URI are known to
belong together, nothing may be sent to that URI: those failures are
``Untrusted`` (an error page, never a redirect — no open redirector). Every
later failure is an ``AuthorizationError`` that goes back to the client's own
redirect URI with ``state`` and ``iss`` (RFC 9207).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

from authsvc.browser.redirects import matches_registered
from authsvc.scopes import split_scope
from authsvc.store.records import Client

__all__ = [
    "OIDC_SCOPES",
    "PARAMETERS",
    "AuthorizationError",
    "AuthorizationRequest",
    "Untrusted",
    "read_pairs",
    "read_request",
    "trusted_redirect",
]

#: The OpenID scopes: a client may ask for them when it lists them; users need no grant.
OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
#: The parameters an authorization request may carry (others are ignored).
PARAMETERS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "nonce",
    "prompt",
    "max_age",
    "login_hint",
    "response_mode",
    "request_uri",
    "request",
    "dpop_jkt",
)
MAX_PARAMETER = 2048  # longer values are refused (nothing of that size is ever echoed back)
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")  # BASE64URL(SHA-256(verifier)): always 43 characters
_PROMPTS = frozenset({"none", "login", "consent"})
_JKT = re.compile(r"[A-Za-z0-9_-]{43}")  # base64url SHA-256


class Untrusted(Exception):
    """The request cannot be answered at its redirect URI: show an error page."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AuthorizationError(Exception):
    """An error for the client, sent to its redirect URI (RFC 6749 §4.1.2.1)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(error)
        self.error = error
        self.description = description


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """A checked request: what a code will be bound to, and how the user is to be asked."""

    client_id: str
    redirect_uri: str
    scope: tuple[str, ...] | None  # None: not asked (every scope the client may have)
    state: str | None
    nonce: str | None
    code_challenge: str
    prompt: tuple[str, ...]
    max_age: int | None
    login_hint: str | None
    dpop_jkt: str | None = None  # RFC 9449 §10: the key the code's redemption must prove

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> AuthorizationRequest:
        data = json.loads(text)
        for name in ("scope", "prompt"):
            if data[name] is not None:
                data[name] = tuple(data[name])
        return cls(**data)

    @property
    def requested_scopes(self) -> frozenset[str] | None:
        return None if self.scope is None else frozenset(self.scope)


def read_pairs(pairs: Iterable[tuple[str, str]]) -> tuple[dict[str, str], frozenset[str]]:
    """The known parameters (empty ones absent) and the names that came more than once."""
    values: dict[str, str] = {}
    seen: set[str] = set()
    repeated: set[str] = set()
    for name, value in pairs:
        if name not in PARAMETERS:
            continue
        if name in seen:
            repeated.add(name)
        seen.add(name)
        if value:
            values[name] = value
    return values, frozenset(repeated)


def trusted_redirect(
    values: Mapping[str, str], repeated: frozenset[str], client: Client | None
) -> tuple[Client, str]:
    """The client and redirect URI, once they are known to belong together; else Untrusted."""
    if "client_id" in repeated or "redirect_uri" in repeated:
        raise Untrusted("The request names more than one client or redirect URI.")
    if client is None or "authorization_code" not in client.grant_types:
        raise Untrusted("The application that sent you here is not known to this server.")
    redirect_uri = values.get("redirect_uri")
    if redirect_uri is None or not matches_registered(redirect_uri, client.redirect_uris):
        raise Untrusted("The application asked to send you to an address it has not registered.")
    too_long = [name for name, value in values.items() if len(value) > MAX_PARAMETER]
    if too_long:
        raise Untrusted("The request is too large.")
    return client, redirect_uri


def read_request(
    values: Mapping[str, str], repeated: frozenset[str], client: Client | None, *, pushed: bool
) -> AuthorizationRequest:
    """The checked request. ``pushed``: it came through PAR (RFC 9126)."""
    client, redirect_uri = trusted_redirect(values, repeated, client)
    if repeated:
        raise AuthorizationError("invalid_request", "A parameter is repeated.")
    if "request" in values:
        raise AuthorizationError("request_not_supported", "Request objects are not supported.")
    if values.get("response_type") != "code":
        raise AuthorizationError("unsupported_response_type", "Only response_type=code is supported.")
    if values.get("response_mode", "query") != "query":
        raise AuthorizationError("invalid_request", "Only response_mode=query is supported.")
    if client.require_par and not pushed:
        raise AuthorizationError("invalid_request", "This client must use pushed authorization requests.")
    challenge = values.get("code_challenge")
    if challenge is None:
        raise AuthorizationError("invalid_request", "The code_challenge parameter is required (PKCE).")
    if values.get("code_challenge_method") != "S256":
        raise AuthorizationError("invalid_request", "The code_challenge_method must be S256.")
    if _CHALLENGE.fullmatch(challenge) is None:
        raise AuthorizationError("invalid_request", "The code_challenge is malformed.")
    scope: tuple[str, ...] | None = None
    if "scope" in values:
        scopes = split_scope(values["scope"])
        if scopes is None:
            raise AuthorizationError("invalid_scope", "The scope parameter is malformed.")
        if client.scopes is not None and not scopes <= client.scopes:
            raise AuthorizationError("invalid_scope", "The client may not ask for that scope.")
        scope = tuple(sorted(scopes))
    prompt = tuple(values.get("prompt", "").split())
    if not set(prompt) <= _PROMPTS or ("none" in prompt and len(prompt) > 1):
        raise AuthorizationError("invalid_request", "The prompt parameter is not supported.")
    max_age = values.get("max_age")
    if max_age is not None and (not max_age.isascii() or not max_age.isdigit() or len(max_age) > 10):
        raise AuthorizationError("invalid_request", "The max_age parameter must be a number of seconds.")
    dpop_jkt = values.get("dpop_jkt")
    if dpop_jkt is not None and _JKT.fullmatch(dpop_jkt) is None:
        raise AuthorizationError("invalid_request", "The dpop_jkt parameter is malformed.")
    return AuthorizationRequest(
        client_id=client.id,
        redirect_uri=redirect_uri,
        scope=scope,
        state=values.get("state"),
        nonce=values.get("nonce"),
        code_challenge=challenge,
        prompt=prompt,
        max_age=int(max_age) if max_age is not None else None,
        login_hint=values.get("login_hint"),
        dpop_jkt=dpop_jkt,
    )
