"""Tokens already verified, so a token seen again skips its signature and its parsing.

A resource server sees the same access token on every request of a session:
after the first, the RSA or Ed25519 check proves nothing new. What a cached
entry still cannot skip is decided by the verifier on every hit (see
:meth:`~authsvc.verifier.core.VerifierCore.cached`): the time claims against
the injected clock, the JWKS still fresh enough to use without a fetch, the
DPoP binding and its proof, the scopes asked for. This module only holds the
entries and the rules for dropping them:

- keyed by the exact token string (a hash of it would cost a SHA-256 per
  request; the string costs its ~1 KB, bounded by ``max_size``);
- bounded: the oldest insertion is evicted first (tokens live minutes, so the
  oldest is the nearest to expiry); ``max_size`` 0 caches nothing;
- only successful verifications are stored (a refusal is never cached);
- :meth:`drop_kids` removes every entry verified with a key the JWKS no longer
  holds (removed, revoked, replaced), and an insertion that raced with such a
  drop is discarded, so a stale entry cannot outlive its key.

Thread-safe: lookups are single dict reads (atomic); insertions and drops
take a lock.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection
from typing import Any, Final

__all__ = ["DEFAULT_MAX_SIZE", "VerifiedToken", "VerifiedTokens", "copy_claims"]

#: Tokens remembered by default: about 2 MiB (a token and its claims are ~2 KiB).
DEFAULT_MAX_SIZE: Final = 1024


def _time(claims: dict[str, Any], name: str, default: float) -> float:
    value = claims.get(name)
    return default if value is None else float(value)


def _json_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {name: _json_copy(member) for name, member in value.items()}
    if isinstance(value, list):
        return [_json_copy(member) for member in value]
    return value


def copy_claims(claims: dict[str, Any], nested: bool) -> dict[str, Any]:
    """A copy the caller may change without touching the cache (deep only when it has to be)."""
    return _json_copy(claims) if nested else claims.copy()


class VerifiedToken:
    """What verifying a token produced, and what a hit re-checks cheaply."""

    __slots__ = ("bound", "claims", "exp", "kid", "nested", "not_before")

    def __init__(self, claims: dict[str, Any], kid: str) -> None:
        """``claims`` must have passed ``check_claims`` (time claims are numbers, ``exp`` is there)."""
        #: The verified claims; never handed out (hits return a copy).
        self.claims = claims
        self.kid = kid
        self.exp = _time(claims, "exp", -math.inf)
        self.not_before = max(_time(claims, "nbf", -math.inf), _time(claims, "iat", -math.inf))
        #: ``cnf`` present: every use needs its DPoP proof checked.
        self.bound = "cnf" in claims
        kinds = set(map(type, claims.values()))
        self.nested = dict in kinds or list in kinds


class VerifiedTokens:
    """A bounded map from token to :class:`VerifiedToken`."""

    def __init__(self, max_size: int = DEFAULT_MAX_SIZE) -> None:
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 0:
            raise ValueError("token_cache_size must be an integer >= 0")
        self.max_size = max_size
        # Insertion order is eviction order; OrderedDict evicts its oldest in O(1). The
        # dict is only ever changed in place, so ``get`` can be its own bound method.
        self._entries: OrderedDict[str, VerifiedToken] = OrderedDict()
        self._lock = threading.Lock()
        #: Moves on every drop: an insertion prepared before a drop is discarded.
        self.epoch = 0
        #: The entry for exactly this token, if any (a single dict read: atomic, no lock).
        self.get: Callable[[str], VerifiedToken | None] = self._entries.get

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, token: str, entry: VerifiedToken, epoch: int) -> None:
        """Remember a verified token, unless a drop happened since ``epoch`` was read."""
        if self.max_size == 0:
            return
        with self._lock:
            if epoch != self.epoch:
                return
            entries = self._entries
            entries.pop(token, None)
            while len(entries) >= self.max_size:
                entries.popitem(last=False)
            entries[token] = entry

    def discard(self, token: str) -> None:
        """Forget one token (it expired)."""
        with self._lock:
            self._entries.pop(token, None)

    def drop_kids(self, kids: Collection[str]) -> None:
        """Forget every token verified with one of these keys."""
        if not kids:
            return
        with self._lock:
            self.epoch += 1
            for token in [t for t, entry in self._entries.items() if entry.kid in kids]:
                del self._entries[token]

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self.epoch += 1
            self._entries.clear()
