"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import Response

from authsvc.api.deps import ServicesDep
from authsvc.api.responses import json_response
from authsvc.api.schemas import health_responses, metrics_responses, readiness_responses
from authsvc.errors import KeyStoreError

__all__ = ["router"]

router = APIRouter()


@router.get("/metrics", summary="Prometheus metrics", response_class=Response, responses=metrics_responses())
async def metrics(request: Request) -> Response:
    body = request.app.state.metrics.render()
    return Response(body, media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/healthz", summary="Liveness: the process answers", response_class=Response, responses=health_responses()
)
async def healthz() -> Response:
    return json_response({"status": "ok"})


@router.get(
    "/readyz",
    summary="Readiness: database and key store usable",
    response_class=Response,
    responses=readiness_responses(),
)
async def readyz(services: ServicesDep) -> Response:
    checks: dict[str, object] = {}
    ready = True
    try:
        async with services.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure to reach the database means not ready
        checks["database"] = f"unavailable: {type(exc).__name__}"
        ready = False
    status = services.keys.status()
    try:
        services.keys.signing_key()
        # Within the stale limit the last key set still serves: ready, but say so.
        checks["key_store"] = "stale: serving the last key set" if status["store_failing"] else "ok"
        checks["signing_kid"] = status["signing_kid"]
        checks["rotation_overdue"] = status["rotation_overdue"]
    except KeyStoreError as exc:
        checks["key_store"] = f"unavailable: {exc}"
        ready = False
    # Keys this process cannot open (another passphrase, a corrupt PEM): reported;
    # a reason for 503 only when it is the signing key (caught just above).
    checks["unloadable_keys"] = status["unloadable_keys"]
    checks["standby_kid"] = status["standby_kid"]
    redis = await services.login_limiter.ping()
    if redis is not None:  # reported, never a reason for 503: limits fall back to memory
        checks["redis"] = "ok" if redis else f"unavailable ({services.login_limiter.backend})"
    checks["status"] = "ready" if ready else "not ready"
    return json_response(checks, 200 if ready else 503)
