"""authsvc.verifier: offline verification of authsvc access tokens for resource servers.

    from authsvc.verifier import Verifier, InvalidToken

    verifier = Verifier("https://auth.example.com", "orders-api")
    claims = await verifier.verify(token)                      # or raises InvalidToken
    app.get("/orders", dependencies=[Depends(verifier.require(scopes=["orders:read"]))])

Needs only the base install (httpx, cryptography, joserfc); FastAPI support
lives in :mod:`authsvc.verifier.fastapi` and is imported on first ``require()``.
:class:`SyncVerifier` is the blocking twin for WSGI apps and scripts.
"""

from __future__ import annotations

from authsvc.verifier.errors import InvalidToken
from authsvc.verifier.verifier import SyncVerifier, Verifier

__all__ = ["InvalidToken", "SyncVerifier", "Verifier"]
