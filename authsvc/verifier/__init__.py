"""authsvc.verifier: offline verification of authsvc access tokens for resource servers.

    from authsvc.verifier import Verifier, InvalidToken

    verifier = Verifier("https://auth.example.com", "orders-api")
    claims = await verifier.verify(token)                      # or raises InvalidToken
    app.get("/orders", dependencies=[Depends(verifier.require(scopes=["orders:read"]))])

DPoP-bound tokens (RFC 9449) need the request's proof; ``require()`` reads it
from the ``DPoP`` header of ``Authorization: DPoP`` requests by itself:

    claims = await verifier.verify(token, dpop=DpopRequest(proof, "GET", "https://api.example.com/orders"))
    Verifier(..., dpop_replay=RedisReplayCache(redis_client), dpop_nonces=RotatingNonces(secret))

Needs only the base install (httpx, cryptography, joserfc); FastAPI support
lives in :mod:`authsvc.verifier.fastapi` and is imported on first ``require()``;
``RedisReplayCache`` takes a client the caller built and imports no redis.
:class:`SyncVerifier` is the blocking twin for WSGI apps and scripts.
"""

from __future__ import annotations

from authsvc.verifier.dpop import DpopRequest
from authsvc.verifier.errors import InvalidToken
from authsvc.verifier.nonces import NonceSource, RotatingNonces
from authsvc.verifier.replay import InMemoryReplayCache, RedisReplayCache, ReplayCache
from authsvc.verifier.verifier import SyncVerifier, Verifier

__all__ = [
    "DpopRequest",
    "InMemoryReplayCache",
    "InvalidToken",
    "NonceSource",
    "RedisReplayCache",
    "ReplayCache",
    "RotatingNonces",
    "SyncVerifier",
    "Verifier",
]
