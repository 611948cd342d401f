"""The public keys a private_key_jwt client registers, and which of them we accept.

A key is usable when ``authsvc.jose.algs_for_jwk`` finds an algorithm of ours
for it (its ``alg``, else the one its type and curve mean; never HS* or none),
it is public, and it is strong enough: RSA of at least 2048 bits, EC only on
P-256. ``key_problem`` names what is wrong with one key (registration
refuses the whole JWKS); ``registered_keys`` and ``usable_keys`` skip unusable
keys at use, so a registration older than these rules, or a key set fetched
from a client's ``jwks_uri``, cannot authenticate with a weak key.
"""

from __future__ import annotations

import json
from typing import Any

from joserfc.jwk import JWKRegistry

from authsvc.jose import ASYMMETRIC_ALGS, MIN_RSA_BITS, algs_for_jwk, rsa_modulus_bits
from authsvc.keys.ring import LoadedKey

__all__ = ["key_problem", "registered_keys", "usable_keys"]


def _checked(raw: object) -> tuple[str, Any] | str:
    """(alg, joserfc key) for a usable key, else the reason it is not."""
    if not isinstance(raw, dict):
        return "a key is not a JSON object"
    if raw.get("use", "sig") != "sig":
        return "a key is not a signature key (use)"
    kty, alg = raw.get("kty"), raw.get("alg")
    if alg is not None and (not isinstance(alg, str) or alg not in ASYMMETRIC_ALGS):
        return f"a key's alg is not one of {', '.join(sorted(ASYMMETRIC_ALGS))}"
    algs = algs_for_jwk(raw)
    if algs is None:
        return "EC keys must be on P-256" if kty == "EC" else "a key's type cannot verify its alg"
    n = raw.get("n")
    if kty == "RSA" and (not isinstance(n, str) or _modulus_bits(n) < MIN_RSA_BITS):
        return f"RSA keys need at least {MIN_RSA_BITS} bits"  # checked before joserfc warns on import
    try:
        # Imported without its ``alg``: the algorithm is pinned here, and joserfc would
        # otherwise refuse RFC 9864's ``Ed25519`` for a key registered as ``EdDSA``.
        key = JWKRegistry.import_key({name: value for name, value in raw.items() if name != "alg"})
    except Exception:  # joserfc raises several types for a bad key
        return "a key cannot be read"
    if key.is_private:
        return "a key holds private members; register only the public half"
    # One pinned alg per key, as before RFC 9864: "EdDSA" for an Ed25519 key without one.
    return ("EdDSA" if "EdDSA" in algs else min(algs)), key


def _modulus_bits(n: str) -> int:
    try:
        return rsa_modulus_bits(n)
    except ValueError:  # not base64url: joserfc's import refuses it below
        return MIN_RSA_BITS


def key_problem(raw: object) -> str | None:
    """Why ``raw`` (one JWK) cannot be registered, or None if it can."""
    checked = _checked(raw)
    return checked if isinstance(checked, str) else None


def registered_keys(jwks: str) -> dict[str, LoadedKey]:
    """The client's usable signature keys by kid, each with its pinned alg (see ``usable_keys``)."""
    try:
        data: Any = json.loads(jwks)
        raw_keys = data["keys"]
    except (ValueError, TypeError, KeyError, RecursionError):  # a broken registration: the client's failure
        return {}
    return usable_keys(raw_keys)


def usable_keys(raw_keys: object) -> dict[str, LoadedKey]:
    """The usable signature keys of a JWKS ``keys`` member, by kid, each with its pinned alg.

    Keys are imported one by one, so an unusable key is skipped without
    shifting the others. A key without ``kid`` is found by its RFC 7638
    thumbprint. Registered keys and keys fetched from a client's ``jwks_uri``
    (``authsvc.client_jwks``) both come through here.
    """
    result: dict[str, LoadedKey] = {}
    for raw in raw_keys if isinstance(raw_keys, list) else ():
        checked = _checked(raw)
        if isinstance(checked, str):
            continue
        alg, key = checked
        kid = raw.get("kid") or key.thumbprint()
        if isinstance(kid, str) and kid not in result:
            result[kid] = LoadedKey(kid, alg, key)
    return result
