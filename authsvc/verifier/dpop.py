"""Sender-constrained tokens at a resource server (RFC 9449 §7): the token's side of DPoP.

The proof itself (shape, key, signature, ``htm``, ``htu``, ``iat``, ``ath``,
nonce) is checked by :func:`authsvc.dpop.check_proof`, the check the server
uses too. What a resource server adds, decided here after the access token
itself was verified:

1. a token whose claims carry ``cnf.jkt`` is DPoP-bound: it is refused
   without a proof (the Bearer scheme), ``dpop_required``;
2. a proof comes only with a bound token: an unbound one sent with the DPoP
   scheme is refused, ``not_dpop_bound``;
3. the proof must pass ``check_proof`` for this request and this token
   (``invalid_dpop_proof``; ``use_dpop_nonce`` when a server nonce is demanded
   and missing or stale);
4. the proof's key must be the one the token is bound to (its RFC 7638
   thumbprint equals ``cnf.jkt``), ``dpop_key_mismatch``;
5. a ``cnf`` this module cannot check (another confirmation method, RFC 8705
   certificates say) refuses the token rather than accepting it as a bearer one.

The proof's ``jti`` is then remembered by the verifier's replay cache until
:func:`replay_expiry`, the last moment its ``iat`` is acceptable.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from authsvc.dpop import DpopError, DpopProof, check_proof
from authsvc.verifier.errors import InvalidToken
from authsvc.verifier.nonces import NonceSource

__all__ = ["DPOP_SCHEME", "DpopRequest", "check_binding", "confirmation", "replay_expiry"]

logger = logging.getLogger("authsvc.verifier")

#: The ``Authorization`` scheme of DPoP-bound tokens (RFC 9449 §7.1).
DPOP_SCHEME: Final = "DPoP"


@dataclass(frozen=True, slots=True)
class DpopRequest:
    """A request made with the DPoP scheme, as the resource server received it.

    ``proof``: the ``DPoP`` header's value; ``method``: the HTTP method
    (``"GET"``); ``url``: the URL the client sent the request to, as clients see
    this server (query and fragment are ignored).
    """

    proof: str
    method: str
    url: str

    def __post_init__(self) -> None:
        if not all(isinstance(value, str) for value in (self.proof, self.method, self.url)):
            raise TypeError("DpopRequest takes strings: proof, method, url")


def confirmation(claims: Mapping[str, Any]) -> str | None:
    """The thumbprint a token is bound to (``cnf.jkt``), None for an unbound token."""
    if "cnf" not in claims:
        return None
    cnf = claims["cnf"]
    if not isinstance(cnf, Mapping):
        raise InvalidToken("invalid_token", "malformed")
    if set(cnf) != {"jkt"}:
        raise InvalidToken("invalid_token", "unsupported_confirmation")
    jkt = cnf["jkt"]
    if not isinstance(jkt, str) or not jkt:
        raise InvalidToken("invalid_token", "malformed")
    return jkt


def check_binding(
    token: str,
    claims: Mapping[str, Any],
    dpop: DpopRequest | None,
    *,
    now: float,
    leeway: float,
    nonces: NonceSource | None,
) -> DpopProof | None:
    """The accepted proof (None for a bearer token used as one), or InvalidToken."""
    jkt = confirmation(claims)
    if dpop is None:
        if jkt is not None:
            raise InvalidToken("invalid_token", "dpop_required")
        return None
    if jkt is None:
        raise InvalidToken("invalid_token", "not_dpop_bound", scheme=DPOP_SCHEME)
    try:
        proof = check_proof(
            dpop.proof,
            method=dpop.method,
            url=dpop.url,
            now=now,
            skew=leeway,
            access_token=token,
            nonce_valid=nonces.valid if nonces is not None else None,
        )
    except DpopError as exc:
        if exc.error == "use_dpop_nonce" and nonces is not None:
            raise InvalidToken(
                "use_dpop_nonce",
                "dpop_nonce_required",
                scheme=DPOP_SCHEME,
                nonce=nonces.current(),
                detail=exc.reason,
            ) from None
        raise InvalidToken(
            "invalid_dpop_proof", "bad_dpop_proof", scheme=DPOP_SCHEME, detail=exc.reason
        ) from None
    except Exception as exc:  # a hostile proof must never escape as another error
        logger.warning("DPoP proof refused after an unexpected %s", type(exc).__name__, exc_info=True)
        raise InvalidToken(
            "invalid_dpop_proof", "bad_dpop_proof", scheme=DPOP_SCHEME, detail="malformed"
        ) from exc
    if proof.jkt != jkt:
        raise InvalidToken("invalid_token", "dpop_key_mismatch", scheme=DPOP_SCHEME)
    return proof


def replay_expiry(proof: DpopProof, leeway: float) -> float:
    """Until when (epoch seconds) the proof's ``jti`` must be remembered: while its ``iat`` is accepted."""
    return proof.iat + leeway
