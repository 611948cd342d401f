"""The one exception the verifier raises.

Every refusal, whatever its cause (a hostile token, an expired one, a JWKS
endpoint that is down), surfaces as :class:`InvalidToken` so that callers need
exactly one ``except``. ``code`` is the RFC 6750 error code a resource server
puts in ``WWW-Authenticate``; ``reason`` is a machine-readable cause, safe to
show, in the style of panva/jose error codes. Neither ever echoes the input.

    InvalidToken
      code "invalid_token"      reason malformed | too_large | expired | not_yet_valid |
                                       issued_in_future | bad_issuer | bad_audience | bad_type |
                                       unsupported_algorithm | no_matching_key | bad_signature |
                                       missing_claim | jwks_unavailable
      code "insufficient_scope" reason insufficient_scope
"""

from __future__ import annotations

from typing import Final

__all__ = ["REASONS", "InvalidToken"]

#: Fixed public text per reason: may be shown to clients, never includes input.
REASONS: Final[dict[str, str]] = {
    "malformed": "The access token is malformed.",
    "too_large": "The access token is too large.",
    "expired": "The access token expired.",
    "not_yet_valid": "The access token is not valid yet.",
    "issued_in_future": "The access token was issued in the future.",
    "bad_issuer": "The access token was issued by another issuer.",
    "bad_audience": "The access token is not meant for this audience.",
    "bad_type": "The token is not an access token.",
    "unsupported_algorithm": "The access token uses an algorithm that is not accepted.",
    "no_matching_key": "The access token was signed by an unknown key.",
    "bad_signature": "The access token signature is invalid.",
    "missing_claim": "The access token lacks a required claim.",
    "insufficient_scope": "The access token lacks a required scope.",
    "jwks_unavailable": "The signing keys are unavailable; try again later.",
}


class InvalidToken(Exception):
    """A token was refused; ``code`` is for the wire, ``reason`` says why.

    ``scope`` is set for ``insufficient_scope`` and holds the space-separated
    scopes the caller asked for, so a ``WWW-Authenticate`` challenge can name them.
    """

    def __init__(self, code: str, reason: str, *, scope: str | None = None) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason
        self.scope = scope

    @property
    def description(self) -> str:
        """The fixed public text for ``reason`` (an RFC 6750 ``error_description``)."""
        return REASONS.get(self.reason, "The access token is invalid.")

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"

    def __repr__(self) -> str:
        return f"InvalidToken({self.code!r}, {self.reason!r})"
