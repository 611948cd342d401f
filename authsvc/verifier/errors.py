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
                                       missing_claim | jwks_unavailable |
                                       dpop_required | not_dpop_bound | dpop_key_mismatch |
                                       unsupported_confirmation | replay_cache_unavailable
      code "invalid_dpop_proof" reason bad_dpop_proof | replayed_dpop_proof
      code "use_dpop_nonce"     reason dpop_nonce_required
      code "insufficient_scope" reason insufficient_scope

DPoP (RFC 9449): ``scheme`` is "DPoP" when the refusal answers a request that
came with a proof (``verify(..., dpop=...)``), so a challenge can use the right
scheme; ``nonce`` is the server nonce to send in ``DPoP-Nonce`` with
``use_dpop_nonce``; ``detail`` says, for logs, what was wrong with a proof.
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
    "dpop_required": "The access token is bound to a DPoP key: send it with the DPoP scheme and a proof.",
    "not_dpop_bound": "The access token is not bound to a DPoP key: send it with the Bearer scheme.",
    "dpop_key_mismatch": "The DPoP proof was not signed by the key the access token is bound to.",
    "unsupported_confirmation": "The access token is bound to its holder in a way this server cannot check.",
    "replay_cache_unavailable": "DPoP proofs cannot be checked for replay now; try again later.",
    "bad_dpop_proof": "The DPoP proof is invalid.",
    "replayed_dpop_proof": "The DPoP proof was already used.",
    "dpop_nonce_required": "The DPoP proof needs the server nonce sent in the DPoP-Nonce header.",
}


class InvalidToken(Exception):
    """A token was refused; ``code`` is for the wire, ``reason`` says why.

    ``scope`` is set for ``insufficient_scope`` and holds the space-separated
    scopes the caller asked for, so a ``WWW-Authenticate`` challenge can name them.
    ``scheme``, ``nonce`` and ``detail`` serve DPoP (see the module docstring).
    """

    def __init__(
        self,
        code: str,
        reason: str,
        *,
        scope: str | None = None,
        scheme: str = "Bearer",
        nonce: str | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason
        self.scope = scope
        self.scheme = scheme
        self.nonce = nonce
        self.detail = detail

    @property
    def description(self) -> str:
        """The fixed public text for ``reason`` (an RFC 6750 ``error_description``)."""
        return REASONS.get(self.reason, "The access token is invalid.")

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"

    def __repr__(self) -> str:
        return f"InvalidToken({self.code!r}, {self.reason!r})"
