"""GET /.well-known/jwks.json: prebuilt bytes, ETag, max-age that respects the timetable.

The JWKS is the most requested document of an identity service and its answer
is prebuilt bytes, so its handler is a bare ASGI app (no Request or Response
object per request); it is a route of the one routing table like any other.
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from authsvc.api.routes import Endpoint
from authsvc.api.schemas import jwks_responses
from authsvc.api.scope_headers import raw_header
from authsvc.keys.jwks import JwksDocument, JwksPublisher
from authsvc.metrics import Metrics

__all__ = ["ENDPOINT", "JWKS_PATH", "JwksEndpoint"]

JWKS_PATH = "/.well-known/jwks.json"


class JwksEndpoint:
    def __init__(self, publisher: JwksPublisher, metrics: Metrics) -> None:
        self.publisher = publisher
        self.metrics = metrics
        self._doc: JwksDocument | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_304: list[tuple[bytes, bytes]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        doc = self.publisher.document()  # KeyStoreError (503) once the store is stale too long
        if doc is not self._doc:
            self._prepare(doc)
        if_none_match = raw_header(scope, b"if-none-match")
        if if_none_match is not None and _matches(if_none_match, doc.etag.encode()):
            self.metrics.jwks_requests.labels("304").inc()
            await send({"type": "http.response.start", "status": 304, "headers": self._head_304})
            await send({"type": "http.response.body", "body": b""})
            return
        self.metrics.jwks_requests.labels("200").inc()
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
    """RFC 9110 §13.1.2: any listed entity tag, weak or strong, or ``*``."""
    for tag in if_none_match.split(b","):
        tag = tag.strip()
        if tag.startswith(b"W/"):
            tag = tag[2:]
        if tag == etag or tag == b"*":
            return True
    return False


ENDPOINT = Endpoint(
    JWKS_PATH,
    {
        "get": {
            "summary": "Public signing keys (RFC 7517)",
            "parameters": [
                {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"}}
            ],
            "responses": jwks_responses(),
        }
    },
    build=lambda services, metrics: JwksEndpoint(services.jwks, metrics),
    asgi=True,
)
