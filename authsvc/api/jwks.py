"""GET /.well-known/jwks.json: prebuilt bytes, ETag, max-age that respects the timetable."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from authsvc.api.deps import ServicesDep
from authsvc.api.schemas import jwks_responses
from authsvc.keys.jwks import JwksDocument

__all__ = ["JWKS_PATH", "JwksFastPath", "router"]

JWKS_PATH = "/.well-known/jwks.json"

router = APIRouter()


@router.get(
    "/.well-known/jwks.json",
    summary="Public signing keys (RFC 7517)",
    response_class=Response,
    responses=jwks_responses(),
    openapi_extra={
        "parameters": [
            {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"}}
        ]
    },
)
async def jwks(request: Request, services: ServicesDep) -> Response:
    doc = services.jwks.document()
    headers = {"Cache-Control": f"public, max-age={doc.max_age}", "ETag": doc.etag}
    if_none_match = request.headers.get("if-none-match")
    metrics = request.app.state.metrics
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")} if if_none_match else set()
    if doc.etag in tags or "*" in tags:
        metrics.jwks_requests.labels("304").inc()
        return Response(status_code=304, headers=headers)
    metrics.jwks_requests.labels("200").inc()
    return Response(doc.body, headers=headers, media_type="application/json")


class JwksFastPath:
    """Answers ``GET /.well-known/jwks.json`` before the framework sees it.

    The JWKS is the most requested document of an identity service and its
    answer is prebuilt bytes; going through routing, dependency injection and
    the exception middleware would cost several times the work itself. The
    route above stays for the OpenAPI document and behaves the same.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._doc: JwksDocument | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_304: list[tuple[bytes, bytes]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != JWKS_PATH or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        try:
            doc = state.services.jwks.document()
        except Exception:  # let the full stack produce the proper error response
            await self.app(scope, receive, send)
            return
        if doc is not self._doc:
            self._prepare(doc)
        if_none_match = None
        for name, value in scope["headers"]:
            if name == b"if-none-match":
                if_none_match = value
                break
        if if_none_match is not None and _matches(if_none_match, doc.etag.encode()):
            state.metrics.jwks_requests.labels("304").inc()
            await send({"type": "http.response.start", "status": 304, "headers": self._head_304})
            await send({"type": "http.response.body", "body": b""})
            return
        state.metrics.jwks_requests.labels("200").inc()
        await send({"type": "http.response.start", "status": 200, "headers": self._headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else doc.body})

    def _prepare(self, doc: JwksDocument) -> None:
        common = [
            (b"cache-control", f"public, max-age={doc.max_age}".encode()),
            (b"etag", doc.etag.encode()),
        ]
        self._head_304 = common
        self._headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(doc.body)).encode()),
            *common,
        ]
        self._doc = doc


def _matches(if_none_match: bytes, etag: bytes) -> bool:
    for tag in if_none_match.split(b","):
        tag = tag.strip()
        if tag.startswith(b"W/"):
            tag = tag[2:]
        if tag == etag or tag == b"*":
            return True
    return False
