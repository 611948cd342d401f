"""A tiny resource server that trusts authsvc access tokens, verified offline.

    AUTHSVC_ISSUER=http://127.0.0.1:8000 python scripts/example_resource_server.py
    curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8001/orders
    curl -H "Authorization: DPoP $TOKEN" -H "DPoP: $PROOF" http://127.0.0.1:8001/orders

GET /whoami needs any valid access token; GET /orders needs scope
``orders:read``; POST /orders needs ``orders:write`` and a DPoP-bound token
(RFC 9449), so a leaked token is useless without the client's key. Every route takes both
schemes: ``Authorization: DPoP`` with a ``DPoP`` proof header for a bound
token (sent as Bearer it is refused), ``Bearer`` for the others. The issuer
comes from ``AUTHSVC_ISSUER`` (default http://127.0.0.1:8000), the accepted
audience from ``RESOURCE_AUDIENCE`` (default ``authsvc``, the audience of
tokens whose client names none) and the URL clients use, which DPoP proofs
name, from ``RESOURCE_PUBLIC_URL`` (default http://127.0.0.1:8001). These
variables deliberately lack the ``AUTHSVC_`` prefix: authsvc refuses unknown
``AUTHSVC_*`` variables, and these are not the server's.

No ``from __future__ import annotations``: FastAPI reads the route annotations.
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import uvicorn
from fastapi import Depends, FastAPI

from authsvc.verifier import Verifier
from authsvc.verifier.fastapi import DpopAuthError, install_error_handler

__all__ = ["create_app"]

HOST, PORT = "127.0.0.1", 8001


def create_app(issuer: str, audience: str, public_url: str | None = None) -> FastAPI:
    """The example API, its verifier closed with the app.

    ``public_url``: how clients reach the API (behind a proxy, say); by default
    DPoP proofs must name the URL the app sees.
    """
    verifier = Verifier(issuer, audience)  # proofs' jti remembered in memory: one process

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with verifier:
            yield

    app = FastAPI(title="Example resource server", lifespan=lifespan)
    install_error_handler(app)
    Claims = dict[str, Any]

    @app.get("/whoami")
    async def whoami(
        claims: Annotated[Claims, Depends(verifier.require(public_url=public_url))],
    ) -> dict[str, Any]:
        """Who the token speaks for, and through which client."""
        return {"sub": claims["sub"], "client_id": claims["client_id"], "scope": claims.get("scope", "")}

    @app.get("/orders")
    async def orders(
        claims: Annotated[Claims, Depends(verifier.require(scopes=["orders:read"], public_url=public_url))],
    ) -> dict[str, Any]:
        """A resource that needs the ``orders:read`` scope."""
        return {"owner": claims["sub"], "orders": [{"id": 1, "item": "coffee beans", "quantity": 2}]}

    @app.post("/orders")
    async def place_order(
        claims: Annotated[Claims, Depends(verifier.require(scopes=["orders:write"], public_url=public_url))],
    ) -> dict[str, Any]:
        """DPoP only: a token with ``cnf`` came with a proof by its key; a bearer token may not order."""
        if "cnf" not in claims:
            raise DpopAuthError(401, "invalid_token", "Orders need a DPoP-bound token.", realm="authsvc")
        return {"owner": claims["sub"], "order": {"id": 2, "item": "coffee beans", "quantity": 1}}

    return app


def main() -> None:
    issuer = os.environ.get("AUTHSVC_ISSUER", "http://127.0.0.1:8000")
    audience = os.environ.get("RESOURCE_AUDIENCE", "authsvc")
    public_url = os.environ.get("RESOURCE_PUBLIC_URL", f"http://{HOST}:{PORT}")
    print(f"Resource server on http://{HOST}:{PORT} trusting {issuer} for audience {audience!r}")
    uvicorn.run(create_app(issuer, audience, public_url), host=HOST, port=PORT)


if __name__ == "__main__":
    main()
