"""Liveness, readiness and the Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response

from authsvc.api.responses import json_response
from authsvc.api.routes import Endpoint
from authsvc.api.schemas import health_responses, metrics_responses, readiness_responses
from authsvc.errors import KeyStoreError
from authsvc.keys.ring import KeyRing
from authsvc.login_limits import LoginLimiter
from authsvc.metrics import Metrics

__all__ = ["HEALTHZ", "METRICS", "READYZ", "MetricsPage", "Readiness"]


async def _alive(_request: Request) -> Response:
    return json_response({"status": "ok"})


class Readiness:
    """503 only for the database or the key store; Redis is reported, never a reason."""

    def __init__(self, engine: AsyncEngine, keys: KeyRing, limiter: LoginLimiter) -> None:
        self.engine = engine
        self.keys = keys
        self.limiter = limiter

    async def __call__(self, _request: Request) -> Response:
        checks: dict[str, object] = {}
        ready = True
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:  # any failure to reach the database means not ready
            checks["database"] = f"unavailable: {type(exc).__name__}"
            ready = False
        status = self.keys.status()
        try:
            self.keys.signing_key()
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
        redis = await self.limiter.ping()
        if redis is not None:  # reported: the limits fall back to the database
            checks["redis"] = "ok" if redis else f"unavailable ({self.limiter.backend})"
        checks["status"] = "ready" if ready else "not ready"
        return json_response(checks, 200 if ready else 503)


class MetricsPage:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def __call__(self, _request: Request) -> Response:
        return Response(self.metrics.render(), media_type=CONTENT_TYPE_LATEST)


HEALTHZ = Endpoint(
    "/healthz",
    {"get": {"summary": "Liveness: the process answers", "responses": health_responses()}},
    build=lambda _services, _metrics: _alive,
)
READYZ = Endpoint(
    "/readyz",
    {"get": {"summary": "Readiness: database and key store usable", "responses": readiness_responses()}},
    build=lambda services, _metrics: Readiness(services.engine, services.keys, services.login_limiter),
)
METRICS = Endpoint(
    "/metrics",
    {"get": {"summary": "Prometheus metrics", "responses": metrics_responses()}},
    build=lambda _services, metrics: MetricsPage(metrics),
)
