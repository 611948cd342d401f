"""The JOSE policy of authsvc, one module for the server and the verifier (base install).

JOSE itself (base64url, JSON, signatures, header registries) is joserfc's.
What is decided here, once, after RFC 8725 and RFC 9068:

* the algorithms we sign with or accept (never HS* or none), which key type
  and curve each needs, and that a key — never a token — decides the
  algorithm (``algs_for_jwk``); RSA keys of at least ``MIN_RSA_BITS``;
* the size a token may have before anything decodes it, the header members
  that are refused outright (ones that point elsewhere for a key, ``crit``,
  unencoded payloads, compression, encryption), and the access-token ``typ``;
* strict JSON (no duplicate members, no NaN/Infinity) and numbers in range;
* the time claims, with the reasons a refusal gives.

joserfc warns on every use of ``EdDSA`` since RFC 9864 named the fully
specified ``Ed25519``. We publish ``EdDSA`` on purpose (PyJWT and most
verifiers do not know ``Ed25519`` yet), so the registry here pins the
algorithms a caller allows and skips that warning instead of filtering
warnings process-wide.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
from collections import OrderedDict
from collections.abc import Collection, Mapping
from typing import Any, Final, Generic, TypeVar

from joserfc.errors import UnsupportedAlgorithmError
from joserfc.jws import JWSRegistry
from joserfc.util import urlsafe_b64decode

__all__ = [
    "ACCESS_TOKEN_TYPES",
    "ALG_KEY_TYPES",
    "ASYMMETRIC_ALGS",
    "MAX_JSON_NUMBER",
    "MAX_TOKEN_LENGTH",
    "MIN_RSA_BITS",
    "REFUSED_HEADERS",
    "PassedHeaders",
    "PinnedRegistry",
    "algs_for_jwk",
    "is_json_number",
    "passed_header_registry_for",
    "registry_for",
    "rsa_modulus_bits",
    "same_alg",
    "strict_json",
    "strict_protected_header",
    "time_problem",
]

#: alg -> (kty, crv): the one kind of key each algorithm verifies with.
ALG_KEY_TYPES: Final[Mapping[str, tuple[str, str | None]]] = {
    "RS256": ("RSA", None),
    "PS256": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "EdDSA": ("OKP", "Ed25519"),
    "Ed25519": ("OKP", "Ed25519"),  # RFC 9864's fully specified name of EdDSA over Ed25519
}
#: The signature algorithms authsvc signs with or accepts. Never HS* or none.
ASYMMETRIC_ALGS: Final[frozenset[str]] = frozenset(ALG_KEY_TYPES)
MIN_RSA_BITS: Final = 2048

#: Tokens longer than this are refused before any decoding.
MAX_TOKEN_LENGTH: Final = 8192
#: RFC 9068 §2.1 ``typ`` values of an access token, compared case-insensitively.
ACCESS_TOKEN_TYPES: Final = frozenset({"at+jwt", "application/at+jwt"})
#: Header members a token may not carry: keys come from our key sets only (``jwk``,
#: ``jku``, ``x5*``), we understand no ``crit`` extension, and payloads are always
#: base64url JSON (no RFC 7797 ``b64``, no ``zip``, never a JWE's ``enc``).
REFUSED_HEADERS: Final = frozenset(
    {"jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256", "crit", "b64", "zip", "enc"}
)
#: The largest magnitude a numeric claim may have: doubles hold every integer up to it,
#: so a claim compares and converts exactly (a 400-digit ``exp`` would overflow ``float``).
MAX_JSON_NUMBER: Final = 2**53


class PinnedRegistry(JWSRegistry):
    """A JWS registry that allows exactly the given asymmetric algorithms."""

    def __init__(self, algorithms: Collection[str]) -> None:
        allowed = set(algorithms)
        if not allowed or not allowed <= ASYMMETRIC_ALGS:
            raise ValueError("only asymmetric signature algorithms can be pinned")
        # RFC 9068 and our refresh tokens put ``typ`` in the header; joserfc already knows
        # it. Nothing is added: unknown ``crit`` members stay refused.
        super().__init__(header_registry={}, algorithms=sorted(allowed))

    def get_alg(self, name: str):  # type: ignore[no-untyped-def]
        """Return the algorithm if pinned, without joserfc's deprecation warning."""
        if not self.allowed or name not in self.allowed or name not in self.algorithms:
            raise UnsupportedAlgorithmError(f"Algorithm of '{name}' is not allowed")
        return self.algorithms[name]


class _PassedHeaderRegistry(PinnedRegistry):
    """``PinnedRegistry`` for ``validate_compact`` on a token whose header segment already passed
    ``check_header`` (that answer remembered in ``PassedHeaders``, keyed by those exact bytes).

    joserfc checks the header again inside ``validate_compact``, a few µs a token (as much as
    a sixth of an RSA verify); the check depends on the header alone, so it is not repeated.
    The algorithm, the key and the signature are still joserfc's, every time.
    """

    def check_header(self, header: Any) -> None:
        return None


_REGISTRIES: dict[str, PinnedRegistry] = {}
_PASSED_REGISTRIES: dict[str, PinnedRegistry] = {}


def registry_for(alg: str) -> PinnedRegistry:
    """The (cached, immutable) registry that allows only ``alg``."""
    reg = _REGISTRIES.get(alg)
    if reg is None:
        reg = _REGISTRIES[alg] = PinnedRegistry([alg])
    return reg


def passed_header_registry_for(alg: str) -> PinnedRegistry:
    """``registry_for(alg)`` for a header that already passed ``check_header`` (see
    ``_PassedHeaderRegistry``): only for callers whose header cache records that."""
    reg = _PASSED_REGISTRIES.get(alg)
    if reg is None:
        reg = _PASSED_REGISTRIES[alg] = _PassedHeaderRegistry([alg])
    return reg


_EDDSA_NAMES: Final = frozenset({"EdDSA", "Ed25519"})


def algs_for_jwk(jwk: Mapping[str, Any]) -> frozenset[str] | None:
    """The algorithms a (public) JWK may verify: its ``alg``, else inferred from kty and crv.

    None for a key whose declared ``alg`` does not fit its type, a symmetric key,
    or anything else we do not verify with.
    """
    kty, crv, alg = jwk.get("kty"), jwk.get("crv"), jwk.get("alg")
    if alg is not None:
        if not isinstance(alg, str) or alg not in ALG_KEY_TYPES:
            return None
        want_kty, want_crv = ALG_KEY_TYPES[alg]
        if kty != want_kty or (want_crv is not None and crv != want_crv):
            return None
        # ``EdDSA`` and RFC 9864's ``Ed25519`` are one algorithm for an Ed25519 key: a key
        # registered under either name verifies a signature made under the other.
        return _EDDSA_NAMES if alg in _EDDSA_NAMES else frozenset({alg})
    if kty == "RSA":
        return frozenset({"RS256"})
    if kty == "EC" and crv == "P-256":
        return frozenset({"ES256"})
    if kty == "OKP" and crv == "Ed25519":
        return frozenset({"EdDSA", "Ed25519"})
    return None


def same_alg(header_alg: object, key_alg: str) -> bool:
    """Whether a header's ``alg`` names the key's algorithm: ``EdDSA`` and RFC 9864's
    ``Ed25519`` are one algorithm for an Ed25519 key."""
    return header_alg == key_alg or (header_alg in _EDDSA_NAMES and key_alg in _EDDSA_NAMES)


def rsa_modulus_bits(n: str) -> int:
    """The size of an RSA JWK's modulus (its base64url ``n``), checked before importing it."""
    raw = base64.urlsafe_b64decode(n + "=" * (-len(n) % 4))
    return int.from_bytes(raw, "big").bit_length()


def _strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate member")
    return obj


def _no_constants(name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


# One decoder for every call: json.loads with hooks builds a new one each time.
_STRICT_DECODER: Final = json.JSONDecoder(object_pairs_hook=_strict_object, parse_constant=_no_constants)


def strict_json(data: bytes | str) -> Any:
    """JSON as RFC 8259 means it for JOSE: no duplicate members, no NaN or Infinity.

    joserfc (like ``json.loads``) keeps the last of duplicate members, so a
    header ``{"alg":"none",...,"alg":"RS256"}`` would mean different things to
    different parsers; we refuse it before anything reads it. Text is read as
    ``json.loads`` reads it (bytes in any UTF it detects, a str BOM refused).
    """
    if isinstance(data, bytes | bytearray):
        # An object's "{" then a non-NUL byte is UTF-8 to json.detect_encoding: skip asking it.
        utf8 = data[:1] == b"{" and data[1:2] != b"\x00"
        text = data.decode("utf-8" if utf8 else json.detect_encoding(data), "surrogatepass")
    elif isinstance(data, str):
        if data.startswith("\ufeff"):
            raise ValueError("JSON text starts with a BOM")
        text = data
    else:
        raise TypeError("strict_json takes bytes or str")
    return _STRICT_DECODER.decode(text)


def strict_protected_header(token: str) -> None:
    """Raise ValueError if the compact JWS's header is not strict JSON.

    Decoding here is only a policy check ahead of joserfc's own parsing.
    """
    segment = token.split(".", 1)[0]
    strict_json(urlsafe_b64decode(segment.encode("ascii")))


def is_json_number(value: object) -> bool:
    """A finite JSON number in range (not a bool, not a string)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return -MAX_JSON_NUMBER <= value <= MAX_JSON_NUMBER  # int vs int: no conversion to float


def time_problem(
    claims: Mapping[str, Any], *, now: float, leeway: float, iat_required: bool = True
) -> str | None:
    """Why ``exp``/``iat``/``nbf`` refuse the token at ``now`` (``leeway`` seconds allowed), or None.

    Reasons: ``missing_claim`` (``exp``, or ``iat`` when required), ``malformed`` (not a
    number in range), ``expired``, ``not_yet_valid``, ``issued_in_future``.
    """
    times: dict[str, float] = {}
    for name in ("exp", "iat", "nbf"):
        if name in claims:
            if not is_json_number(claims[name]):
                return "malformed"
            times[name] = float(claims[name])
    if "exp" not in times or ("iat" not in times and iat_required):
        return "missing_claim"
    if times["exp"] <= now - leeway:
        return "expired"
    if times.get("nbf", -math.inf) > now + leeway:
        return "not_yet_valid"
    if times.get("iat", -math.inf) > now + leeway:
        return "issued_in_future"
    return None


T = TypeVar("T")


class PassedHeaders(Generic[T]):
    """Encoded protected headers that passed a header policy, and what it made of them.

    A signer sends the same header with every token or proof (typ, alg, its kid or its
    key), and a header policy's answer depends on those bytes alone, so the answer for
    a segment seen before is looked up, not decoded and checked again. Everything past
    the header (signature, claims) is still checked every time. Bounded, oldest out;
    only headers that passed go in. Shared by the threads of a process (the GIL keeps
    the dict whole; a lost race only drops an entry).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._passed: OrderedDict[str, T] = OrderedDict()

    def get(self, segment: str) -> T | None:
        return self._passed.get(segment)

    def remember(self, segment: str, answer: T) -> None:
        self._passed[segment] = answer
        if len(self._passed) > self.size:
            with contextlib.suppress(KeyError):  # another thread may have dropped it first
                self._passed.popitem(last=False)

    def __contains__(self, segment: object) -> bool:
        return segment in self._passed

    def __len__(self) -> int:
        return len(self._passed)
