"""DPoP proofs (RFC 9449 §4.3): one check for the server's token endpoint and resources and for
``authsvc.verifier`` (base install: no server packages).

A proof is a JWS the client signs with a key of its own, carried in its
``jwk`` header; the access token names that key by thumbprint (``cnf.jkt``).
Everything about the proof itself is checked here: its shape and size, the
key (public, of an allowed type and strength), the signature (joserfc), the
method and URL it was made for, its age, the access token it goes with
(``ath``) and a server nonce when one is demanded. What cannot be checked
from the proof alone — that its ``jti`` was never seen before — is the
caller's, through a replay cache keyed by ``replay_key``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry

from authsvc.jose import (
    MAX_TOKEN_LENGTH,
    MIN_RSA_BITS,
    REFUSED_HEADERS,
    PassedHeaders,
    PinnedRegistry,
    algs_for_jwk,
    is_json_number,
    passed_header_registry_for,
    rsa_modulus_bits,
    strict_json,
    strict_protected_header,
)

__all__ = [
    "DPOP_ALGS",
    "DPOP_TYP",
    "DpopError",
    "DpopProof",
    "access_token_hash",
    "check_proof",
    "proof_header",
    "replay_key",
    "same_url",
]

DPOP_TYP: Final = "dpop+jwt"
#: The algorithms a proof may use, in the order metadata advertises them.
DPOP_ALGS: Final = ("ES256", "EdDSA", "Ed25519", "RS256", "PS256")
_PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_REFUSED: Final = REFUSED_HEADERS - {"jwk"}  # the proof's own key is the point; nothing else
_MAX_JTI: Final = 256
# Extraction checks only sizes and syntax; the header carries the key, so it may be larger
# than a token's (an RSA-4096 JWK is about 1,100 characters encoded).
_ANY = PinnedRegistry(DPOP_ALGS)
_ANY.max_header_length = 2048


class DpopError(Exception):
    """A proof refused. ``error``: ``invalid_dpop_proof`` or ``use_dpop_nonce``; ``reason`` for logs."""

    def __init__(self, reason: str, error: str = "invalid_dpop_proof") -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error


@dataclass(frozen=True, slots=True)
class DpopProof:
    jkt: str  # RFC 7638 thumbprint of the proof's key: what tokens are bound to
    jti: str
    iat: float


def proof_header(values: list[str]) -> str | None:
    """The one ``DPoP`` header field of a request (None when absent; two are refused)."""
    if not values:
        return None
    if len(values) > 1:
        raise DpopError("more than one DPoP header")
    return values[0]


def access_token_hash(access_token: str) -> str:
    """``ath``: base64url(SHA-256) of the access token's ASCII bytes."""
    digest = hashlib.sha256(access_token.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def replay_key(proof: DpopProof) -> tuple[str, str]:
    """(owner, id) under which a proof's jti is remembered: per key, so clients cannot collide."""
    return "dpop:" + proof.jkt, proof.jti


def check_proof(
    proof: str,
    *,
    method: str,
    url: str,
    now: float,
    skew: float,
    access_token: str | None = None,
    nonce_valid: Callable[[str | None], bool] | None = None,
) -> DpopProof:
    """The proof's key thumbprint and jti, or DpopError.

    ``url``: the URL the request was sent to, as this server knows itself;
    ``access_token``: at a resource, the token the proof must name (``ath``);
    ``nonce_valid``: when the server demands nonces, whether the proof's (or
    its absence) is acceptable — a refusal is ``use_dpop_nonce``.
    """
    claims, (_key, thumbprint) = _verified(proof)
    if claims.get("htm") != method:
        raise DpopError("htm does not match the request")
    htu = claims.get("htu")
    if not isinstance(htu, str) or not same_url(htu, url):
        raise DpopError("htu does not match the request")
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or not is_json_number(iat):
        raise DpopError("iat missing or malformed")
    if abs(float(iat) - now) > skew:
        raise DpopError("iat outside the accepted window")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > _MAX_JTI:
        raise DpopError("jti missing or malformed")
    if access_token is not None:
        ath = claims.get("ath")
        if not isinstance(ath, str) or ath != access_token_hash(access_token):
            raise DpopError("ath does not match the access token")
    if nonce_valid is not None:
        nonce = claims.get("nonce")
        if not nonce_valid(nonce if isinstance(nonce, str) else None):
            raise DpopError("a fresh server nonce is required", "use_dpop_nonce")
    return DpopProof(jkt=thumbprint, jti=jti, iat=float(iat))


def _verified(proof: str) -> tuple[dict[str, Any], Any]:
    if not isinstance(proof, str) or not proof or len(proof) > MAX_TOKEN_LENGTH or not proof.isascii():
        raise DpopError("malformed")
    if proof.count(".") != 2:
        raise DpopError("malformed")
    segment = proof.split(".", 1)[0]
    checked = _header_checked.get(segment)
    try:
        if checked is None:
            strict_protected_header(proof)
        obj = jws.extract_compact(proof.encode("ascii"), registry=_ANY)
    except (JoseError, ValueError, TypeError, UnicodeError, RecursionError):
        raise DpopError("malformed") from None
    if checked is None:
        checked = _check_header(obj.headers())
        _header_checked.remember(segment, checked)
    alg, key = checked
    try:
        # ``_check_header`` ran joserfc's header check on these header bytes (and remembered it).
        valid = jws.validate_compact(obj, key[0], registry=passed_header_registry_for(alg))
    except (JoseError, ValueError, TypeError):
        raise DpopError("bad signature") from None
    if not valid:
        raise DpopError("bad signature")
    try:
        claims = strict_json(obj.payload)
    except (ValueError, TypeError, UnicodeError, RecursionError):
        raise DpopError("malformed payload") from None
    if not isinstance(claims, dict):
        raise DpopError("malformed payload")
    return claims, key


def _check_header(header: Mapping[str, Any]) -> tuple[str, tuple[Any, str]]:
    """(alg, (key, thumbprint)) of a proof's protected header, or DpopError."""
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() != DPOP_TYP:
        raise DpopError("typ is not dpop+jwt")
    if _REFUSED.intersection(header):
        raise DpopError("forbidden header member")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in DPOP_ALGS:
        raise DpopError("alg not allowed")
    try:
        _ANY.check_header(dict(header))  # joserfc's own member types and names
    except JoseError:
        raise DpopError("malformed") from None
    return alg, _public_key(header.get("jwk"), alg)


# Headers that passed ``_check_header`` -> (alg, (key, thumbprint)).
_header_checked: Final[PassedHeaders[tuple[str, tuple[Any, str]]]] = PassedHeaders(1024)


def _public_key(jwk: object, alg: str) -> tuple[Any, str]:
    if not isinstance(jwk, Mapping):
        raise DpopError("no jwk")
    if _PRIVATE_MEMBERS.intersection(jwk):
        raise DpopError("jwk holds private members")
    algs = algs_for_jwk(jwk)
    if algs is not None and "alg" not in jwk and jwk.get("kty") == "RSA":
        algs = frozenset({"RS256", "PS256"})  # without ``alg`` an RSA key may sign either
    if algs is None or alg not in algs:
        raise DpopError("jwk does not fit alg")
    if jwk.get("kty") == "RSA":
        n = jwk.get("n")
        try:
            bits = rsa_modulus_bits(n) if isinstance(n, str) else 0
        except ValueError:
            bits = 0
        if bits < MIN_RSA_BITS:
            raise DpopError("RSA key too small")
    # Without ``alg``: checked above, and ``EdDSA``/``Ed25519`` name one algorithm.
    members = {name: value for name, value in jwk.items() if name != "alg"}
    try:
        return _imported(json.dumps(members, sort_keys=True, separators=(",", ":")))
    except Exception:  # joserfc raises several types for a bad key
        raise DpopError("jwk cannot be read") from None


@functools.lru_cache(maxsize=1024)
def _imported(members: str) -> tuple[Any, str]:
    """A client's key and its thumbprint, imported once: a client signs every proof with the same
    key, and parsing it is a good part of a proof's cost. Keys are public: nothing secret is kept."""
    key = JWKRegistry.import_key(json.loads(members))
    return key, key.thumbprint()


_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def same_url(htu: str, url: str) -> bool:
    """RFC 9449 §4.3: the two URLs without query and fragment, after RFC 3986 §6.2.2-6.2.3
    normalisation (scheme and host case, the default port, an empty path)."""
    return _normal(htu) == _normal(url) is not None


@functools.lru_cache(maxsize=256)
def _normal(url: str) -> tuple[str, str, int | None, str] | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.username is not None:
        return None
    if port == _DEFAULT_PORTS[scheme]:
        port = None
    return scheme, parts.hostname.lower(), port, parts.path or "/"
