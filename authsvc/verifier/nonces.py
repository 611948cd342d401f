"""Server nonces for DPoP proofs at a resource server (RFC 9449 §9).

A resource server that wants proofs to be fresh by its own clock, not only by
the client's ``iat``, hands out a nonce in the ``DPoP-Nonce`` header and refuses
proofs without a current one (``use_dpop_nonce``). :class:`NonceSource` is what
the verifier needs; :class:`RotatingNonces` is a stateless implementation: a
nonce is the HMAC of a time window's number, accepted during that window and the
next, so every instance sharing the secret accepts every other's nonces and
nothing is stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import time
from collections.abc import Callable
from typing import Final, Protocol, runtime_checkable

__all__ = ["NonceSource", "RotatingNonces"]

_MIN_SECRET_BYTES: Final = 16
_LABEL: Final = b"authsvc verifier dpop nonce\x00"


@runtime_checkable
class NonceSource(Protocol):
    """Issues and recognises DPoP server nonces."""

    def current(self) -> str:
        """A nonce to send in ``DPoP-Nonce`` now."""
        ...

    def valid(self, nonce: str | None) -> bool:
        """Whether a proof's ``nonce`` (None: the proof has none) is acceptable now."""
        ...


class RotatingNonces:
    """Nonces that change every ``window`` seconds: HMAC-SHA256(secret, window number).

    A nonce is accepted in the window it was issued and the one after, so a
    nonce lives between ``window`` and ``2 * window`` seconds. Share ``secret``
    (at least 16 random bytes) between the instances of one resource server.
    """

    def __init__(
        self, secret: bytes, window: float = 60, *, clock: Callable[[], float] | None = None
    ) -> None:
        if not isinstance(secret, bytes) or len(secret) < _MIN_SECRET_BYTES:
            raise ValueError(f"secret must be at least {_MIN_SECRET_BYTES} bytes")
        if isinstance(window, bool) or not isinstance(window, int | float) or not window > 0:
            raise ValueError("window must be a number > 0")
        if math.isinf(window):
            raise ValueError("window must be finite")
        self._secret = secret
        self.window = float(window)
        self._clock = clock if clock is not None else time.time

    def _number(self) -> int:
        return math.floor(float(self._clock()) / self.window)

    def _nonce(self, number: int) -> str:
        mac = hmac.new(self._secret, _LABEL + str(number).encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def current(self) -> str:
        return self._nonce(self._number())

    def valid(self, nonce: str | None) -> bool:
        if not isinstance(nonce, str) or not nonce.isascii():
            return False
        number = self._number()
        given = nonce.encode()
        # Both comparisons always run: the time taken says nothing about which matched.
        matches = [hmac.compare_digest(given, self._nonce(n).encode()) for n in (number, number - 1)]
        return any(matches)
