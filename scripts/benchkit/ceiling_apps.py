"""What runs inside the ceiling processes (started as ``bench.py _static PORT`` / ``_bare PORT CONFIG``).

The static responder is the load generator's own ceiling: raw asyncio, the same
bytes for every request, as little work per request as a server can do. The
bare FastAPI app is authsvc's ceiling: served by the same uvicorn call as
``authsvc serve``, with routes that do only the unavoidable part of each of
authsvc's routes.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route functions' annotations
# at run time, and ``Request`` is imported inside ``serve_bare``, where string annotations cannot see it.
import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from benchkit.config import SCOPES

__all__ = ["serve_bare", "serve_static"]

_STATIC_BODY = json.dumps(
    {
        "access_token": "a" * 700,
        "token_type": "Bearer",
        "expires_in": 900,
        "scope": SCOPES,
        "refresh_token": "r" * 420,
    },
    separators=(",", ":"),
).encode()
_STATIC_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(_STATIC_BODY)).encode()
    + b"\r\n\r\n"
    + _STATIC_BODY
)


class _StaticProtocol(asyncio.Protocol):
    """Answers every HTTP/1.1 request on the connection with the same bytes."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        for _ in range(10_000):
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buffer[:end].lower()
            length = 0
            at = head.find(b"content-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at)
                length = int(head[at + 15 : stop if stop >= 0 else None].strip() or 0)
            total = end + 4 + length
            if len(buffer) < total:
                break
            buffer = buffer[total:]
            self.transport.write(_STATIC_RESPONSE)
        self.buffer = buffer


def serve_static(port: int) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_StaticProtocol, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def serve_bare(port: int, config_path: str) -> None:
    """The ceiling: a bare FastAPI app, served the way ``authsvc serve`` serves authsvc."""
    import jwt
    import uvicorn
    from fastapi import FastAPI, Request
    from starlette.responses import JSONResponse, Response

    config = json.loads(Path(config_path).read_text())
    body = Path(config["bytes_file"]).read_bytes()
    alg, issuer, audience = config["alg"], config["issuer"], config["audience"]
    public_key = jwt.PyJWK(config["jwk"]).key
    ok = b'{"ok":true}'
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/bytes")
    async def constant() -> Response:
        return Response(body, media_type="application/json")

    @app.post("/raw")
    async def raw(request: Request) -> Response:
        parse_qsl((await request.body()).decode(), keep_blank_values=True)
        return Response(ok, media_type="application/json")

    @app.post("/form")
    async def form(request: Request) -> Response:
        try:
            await request.form()
        except AssertionError:  # python-multipart missing
            return Response(status_code=501)
        return Response(ok, media_type="application/json")

    @app.get("/pyjwt/me")
    async def pyjwt_me(request: Request) -> Any:
        token = request.headers.get("authorization", "").partition(" ")[2]
        try:
            claims = jwt.decode(token, public_key, algorithms=[alg], audience=audience, issuer=issuer)
        except jwt.PyJWTError:
            return JSONResponse({"detail": "invalid token"}, status_code=401)
        return {"username": claims["sub"], "email": None, "full_name": None, "disabled": False}

    # The same call as `authsvc serve` (authsvc/cli.py) with one worker: no access log either.
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="info", access_log=False, server_header=False)
