"""GET /.well-known/jwks.json: prebuilt bytes, ETag, max-age that respects the timetable."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from authsvc.api.deps import ServicesDep

__all__ = ["router"]

router = APIRouter()


@router.get("/.well-known/jwks.json", summary="Public signing keys (RFC 7517)")
async def jwks(request: Request, services: ServicesDep) -> Response:
    doc = services.keys.jwks()
    headers = {"Cache-Control": f"public, max-age={doc.max_age}", "ETag": doc.etag}
    if_none_match = request.headers.get("if-none-match")
    metrics = request.app.state.metrics
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")} if if_none_match else set()
    if doc.etag in tags or "*" in tags:
        metrics.jwks_requests.labels("304").inc()
        return Response(status_code=304, headers=headers)
    metrics.jwks_requests.labels("200").inc()
    return Response(doc.body, headers=headers, media_type="application/json")
