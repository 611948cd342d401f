"""DPoP at this server's own endpoints: a request's proof checked, its jti used once, nonces.

``authsvc.dpop`` checks the proof itself; here is what needs the server: the
URL the proof must name (the issuer's, never the Host header), the replay
store shared by every process and instance (the table that remembers client
assertion ids, under the proof key's thumbprint), and server nonces when
``AUTHSVC_DPOP_NONCE`` is on — HMACs of the current minute under a secret the
database shares, so a nonce one instance gave out is good at every other.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Awaitable, Callable

from starlette.requests import Request

from authsvc.clock import Clock
from authsvc.dpop import DpopError, DpopProof, check_proof, proof_header, replay_key
from authsvc.events import DpopProofRefused, Events

__all__ = ["DpopGate", "ServerNonces"]

NONCE_WINDOW = 60  # seconds; a nonce is good for its window and the next

#: (owner, jti, remember until, now) -> True the first time (``SqlClientStore.use_assertion``).
ReplayStore = Callable[[str, str, float, float], Awaitable[bool]]


class ServerNonces:
    def __init__(self, secret: bytes, clock: Clock) -> None:
        self.secret = secret
        self.clock = clock

    def _nonce(self, window: int) -> str:
        mac = hmac.new(self.secret, str(window).encode(), hashlib.sha256).digest()[:18]
        return base64.urlsafe_b64encode(mac).decode()

    def current(self) -> str:
        return self._nonce(int(self.clock.now() // NONCE_WINDOW))

    def valid(self, nonce: str | None) -> bool:
        if nonce is None:
            return False
        window = int(self.clock.now() // NONCE_WINDOW)
        return any(hmac.compare_digest(nonce, self._nonce(w)) for w in (window, window - 1))


class DpopGate:
    def __init__(
        self,
        issuer: str,
        clock: Clock,
        skew: int,
        replay: ReplayStore,
        nonces: ServerNonces | None,
        events: Events,
    ) -> None:
        self.events = events
        self.issuer = issuer
        self.clock = clock
        self.skew = skew
        self.replay = replay
        self.nonces = nonces

    def now(self) -> float:
        """The time a request that carries a proof arrived at, to judge the proof's ``iat`` by."""
        return self.clock.now()

    def nonce(self) -> str | None:
        """The nonce to hand out now (None when nonces are off)."""
        return self.nonces.current() if self.nonces is not None else None

    async def proof(
        self,
        request: Request,
        *,
        access_token: str | None = None,
        bound_to: str | None = None,
        arrived: float | None = None,
    ) -> DpopProof | None:
        """The request's checked proof (None without a DPoP header), or DpopError (reported).

        ``bound_to``: the key the access token is bound to; a proof by another key is
        refused (``invalid_token``, RFC 9449 §7.1) before its jti is used up.
        ``arrived``: when the request arrived (``now()`` then), if work that can wait on
        the database came before this check: a proof fresh on arrival is not refused for
        the server's own delay.
        """
        try:
            return await self._proof(request, access_token, bound_to, arrived)
        except DpopError as refused:
            self.events.publish(DpopProofRefused(reason=refused.reason))
            raise

    async def _proof(
        self, request: Request, access_token: str | None, bound_to: str | None, arrived: float | None
    ) -> DpopProof | None:
        value = proof_header(request.headers.getlist("dpop"))
        if value is None:
            return None
        now = self.clock.now() if arrived is None else arrived
        proof = check_proof(
            value,
            method=request.method,
            url=self.issuer + request.url.path,
            now=now,
            skew=self.skew,
            access_token=access_token,
            nonce_valid=self.nonces.valid if self.nonces is not None else None,
        )
        if bound_to is not None and proof.jkt != bound_to:
            raise DpopError("proof key is not the token's", "invalid_token")
        owner, jti = replay_key(proof)
        # Remembered while check_proof could accept its iat, on any instance.
        if not await self.replay(owner, jti, proof.iat + self.skew + 1, now):
            raise DpopError("jti used before")
        return proof
