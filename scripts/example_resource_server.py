"""A tiny resource server that trusts authsvc access tokens, verified offline.

    AUTHSVC_ISSUER=http://127.0.0.1:8000 python scripts/example_resource_server.py
    curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8001/orders

GET /whoami needs any valid access token; GET /orders needs scope
``orders:read``. The issuer comes from ``AUTHSVC_ISSUER`` (default
http://127.0.0.1:8000) and the accepted audience from ``RESOURCE_AUDIENCE``
(default ``authsvc``, the audience of tokens whose client names none). The
audience variable deliberately lacks the ``AUTHSVC_`` prefix: authsvc refuses
unknown ``AUTHSVC_*`` variables, and this one is not the server's.

No ``from __future__ import annotations``: FastAPI reads the route annotations.
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import uvicorn
from fastapi import Depends, FastAPI

from authsvc.verifier import Verifier
from authsvc.verifier.fastapi import install_error_handler

__all__ = ["create_app"]

HOST, PORT = "127.0.0.1", 8001


def create_app(issuer: str, audience: str) -> FastAPI:
    """The example API, its verifier closed with the app."""
    verifier = Verifier(issuer, audience)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with verifier:
            yield

    app = FastAPI(title="Example resource server", lifespan=lifespan)
    install_error_handler(app)
    Claims = dict[str, Any]

    @app.get("/whoami")
    async def whoami(claims: Annotated[Claims, Depends(verifier.require())]) -> dict[str, Any]:
        """Who the token speaks for, and through which client."""
        return {"sub": claims["sub"], "client_id": claims["client_id"], "scope": claims.get("scope", "")}

    @app.get("/orders")
    async def orders(
        claims: Annotated[Claims, Depends(verifier.require(scopes=["orders:read"]))],
    ) -> dict[str, Any]:
        """A resource that needs the ``orders:read`` scope."""
        return {"owner": claims["sub"], "orders": [{"id": 1, "item": "coffee beans", "quantity": 2}]}

    return app


def main() -> None:
    issuer = os.environ.get("AUTHSVC_ISSUER", "http://127.0.0.1:8000")
    audience = os.environ.get("RESOURCE_AUDIENCE", "authsvc")
    print(f"Resource server on http://{HOST}:{PORT} trusting {issuer} for audience {audience!r}")
    uvicorn.run(create_app(issuer, audience), host=HOST, port=PORT)


if __name__ == "__main__":
    main()
