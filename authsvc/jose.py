"""The JOSE registry shared by the issuer and the verifier.

joserfc warns on every use of ``EdDSA`` since RFC 9864 named the fully
specified ``Ed25519``. We publish ``EdDSA`` on purpose (PyJWT and most
verifiers do not know ``Ed25519`` yet), so the registry here pins the
algorithms a caller allows and skips that warning instead of filtering
warnings process-wide. Everything else (header checks, ``crit``, size limits)
is joserfc's own.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from typing import Any

from joserfc.errors import UnsupportedAlgorithmError
from joserfc.jws import JWSRegistry
from joserfc.registry import HeaderParameter
from joserfc.util import urlsafe_b64decode

__all__ = [
    "ASYMMETRIC_ALGS",
    "MAX_JSON_NUMBER",
    "PinnedRegistry",
    "is_json_number",
    "registry_for",
    "strict_json",
    "strict_protected_header",
]

#: The signature algorithms authsvc signs with or accepts. Never HS* or none.
ASYMMETRIC_ALGS: frozenset[str] = frozenset({"RS256", "PS256", "ES256", "EdDSA", "Ed25519"})

# RFC 9068 and our refresh tokens put ``typ`` in the header; joserfc already
# knows it. Nothing else is added: unknown ``crit`` members stay refused.
_EXTRA_HEADERS: dict[str, HeaderParameter] = {}


class PinnedRegistry(JWSRegistry):
    """A JWS registry that allows exactly the given asymmetric algorithms."""

    def __init__(self, algorithms: Collection[str]) -> None:
        allowed = set(algorithms)
        if not allowed or not allowed <= ASYMMETRIC_ALGS:
            raise ValueError("only asymmetric signature algorithms can be pinned")
        super().__init__(header_registry=_EXTRA_HEADERS, algorithms=sorted(allowed))

    def get_alg(self, name: str):  # type: ignore[no-untyped-def]
        """Return the algorithm if pinned, without joserfc's deprecation warning."""
        if not self.allowed or name not in self.allowed or name not in self.algorithms:
            raise UnsupportedAlgorithmError(f"Algorithm of '{name}' is not allowed")
        return self.algorithms[name]


_REGISTRIES: dict[str, PinnedRegistry] = {}


def registry_for(alg: str) -> PinnedRegistry:
    """The (cached, immutable) registry that allows only ``alg``."""
    reg = _REGISTRIES.get(alg)
    if reg is None:
        reg = _REGISTRIES[alg] = PinnedRegistry([alg])
    return reg


def _strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for name, value in pairs:
        if name in obj:
            raise ValueError("duplicate member")
        obj[name] = value
    return obj


def _no_constants(name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


def strict_json(data: bytes | str) -> Any:
    """JSON as RFC 8259 means it for JOSE: no duplicate members, no NaN or Infinity.

    joserfc (like ``json.loads``) keeps the last of duplicate members, so a
    header ``{"alg":"none",...,"alg":"RS256"}`` would mean different things to
    different parsers; we refuse it before anything reads it.
    """
    return json.loads(data, object_pairs_hook=_strict_object, parse_constant=_no_constants)


def strict_protected_header(token: str) -> None:
    """Raise ValueError if the compact JWS's header is not strict JSON.

    Decoding here is only a policy check ahead of joserfc's own parsing.
    """
    segment = token.split(".", 1)[0]
    strict_json(urlsafe_b64decode(segment.encode("ascii")))


#: The largest magnitude a numeric claim may have: doubles hold every integer up to it,
#: so a claim compares and converts exactly (a 400-digit ``exp`` would overflow ``float``).
MAX_JSON_NUMBER = 2**53


def is_json_number(value: object) -> bool:
    """A finite JSON number in range (not a bool, not a string)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return -MAX_JSON_NUMBER <= value <= MAX_JSON_NUMBER  # int vs int: no conversion to float
