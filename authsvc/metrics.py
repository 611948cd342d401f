"""Prometheus metrics, one registry per app (no process-global state).

Security counters subscribe to the app's own events (``authsvc.events``), so
what operators alert on is exactly what the audit trail records, and two apps
in one process (tests run several) never count each other's. Key gauges are
read from the key manager at scrape time. Responses are counted by route,
method and status, so 5xx can be alerted on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authsvc.api.scope_headers import raw_header
from authsvc.errors import TOKEN_ERROR_CODES, InvalidTokenError, TemporarilyUnavailable
from authsvc.events import (
    BrowserLoggedOut,
    BrowserSignedIn,
    CodeIssued,
    CodeRedeemed,
    CodeReused,
    ConsentDenied,
    ConsentGiven,
    ConsentRevoked,
    DpopProofRefused,
    Event,
    LoginFailed,
    LoginRateLimited,
    RefreshReuseDetected,
    SessionsLoggedOut,
    TokenRevoked,
    UserDisabled,
)
from authsvc.grants import GRANT_TYPES
from authsvc.keys.ring import KeyRing
from authsvc.logs import new_request_id, request_id

__all__ = ["Metrics", "MetricsMiddleware"]

_BROWSER_EVENTS = (
    BrowserSignedIn,
    ConsentGiven,
    ConsentDenied,
    ConsentRevoked,
    CodeIssued,
    CodeRedeemed,
    CodeReused,
    BrowserLoggedOut,
)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class _KeyCollector(Collector):
    def __init__(self, keys: KeyRing) -> None:
        self.keys = keys

    def collect(self) -> Iterable[GaugeMetricFamily]:
        status = self.keys.status()
        age = status["signing_key_age"]
        until = status["seconds_until_next_change"]
        yield GaugeMetricFamily(
            "authsvc_signing_key_age_seconds",
            "Seconds since the signing key started signing",
            value=float(age) if age is not None else math.nan,
        )
        yield GaugeMetricFamily(
            "authsvc_seconds_until_key_change",
            "Seconds until the next scheduled change of the key set",
            value=float(until) if math.isfinite(until) else math.inf,
        )
        current = self.keys.timetable.signing(self.keys.clock.now())
        due = (
            current.sign_from + self.keys.lifetimes.rotation_period - self.keys.clock.now()
            if current is not None
            else math.nan
        )
        yield GaugeMetricFamily(
            "authsvc_rotation_due_seconds",
            "Seconds until the signing key's rotation period ends (negative: overdue)",
            value=float(due),
        )
        yield GaugeMetricFamily(
            "authsvc_keys_unloadable",
            "Published keys whose private half this process cannot open (wrong passphrase, corrupt PEM)",
            value=float(len(status["unloadable_keys"])),
        )
        yield GaugeMetricFamily(
            "authsvc_standby_key_published",
            "1 while a standby key (AUTHSVC_KEY_STANDBY) is published, ready to sign",
            value=1.0 if status["standby_kid"] else 0.0,
        )
        yield GaugeMetricFamily(
            "authsvc_rotation_overdue",
            "1 when the signing key has outlived its period without a successor",
            value=1.0 if status["rotation_overdue"] else 0.0,
        )


class Metrics:
    """The app's counters (fed by its events) and its request metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.tokens_issued = Counter(
            "authsvc_tokens_issued", "Tokens issued, by grant", ["grant"], registry=r
        )
        self.token_errors = Counter(
            "authsvc_token_errors", "OAuth errors returned, by code", ["error"], registry=r
        )
        self.reuse_detected = Counter(
            "authsvc_refresh_reuse_detected", "Spent refresh tokens replayed (families revoked)", registry=r
        )
        self.revocations = Counter(
            "authsvc_revocations", "Revocations, by token use", ["token_use"], registry=r
        )
        self.logins_failed = Counter("authsvc_logins_failed", "Failed password logins", registry=r)
        self.dpop_refused = Counter(
            "authsvc_dpop_proofs_refused", "DPoP proofs refused, by reason", ["reason"], registry=r
        )
        # Browser sign-in: sign-ins, consent decisions, codes, logouts, by what happened.
        self.browser = Counter(
            "authsvc_browser_events", "Browser sign-in events, by kind", ["event"], registry=r
        )
        self.logins_limited = Counter(
            "authsvc_logins_rate_limited", "Logins refused by the limits", registry=r
        )
        self.jwks_requests = Counter(
            "authsvc_jwks_requests", "JWKS requests, by status", ["status"], registry=r
        )
        self.responses = Counter(
            "authsvc_http_responses",
            "HTTP responses by route, method and status code",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "authsvc_request_duration_seconds",
            "Request latency by route",
            ["route", "method"],
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        )

        # Every known label value from zero, so rate() and absent-series alerts work at once.
        for grant in GRANT_TYPES:
            self.tokens_issued.labels(grant)
        for code in (*TOKEN_ERROR_CODES, InvalidTokenError.error, TemporarilyUnavailable.error):
            self.token_errors.labels(code)
        for use in ("access_token", "refresh_token", "session"):
            self.revocations.labels(use)
        for status in ("200", "304"):
            self.jwks_requests.labels(status)

    def watch_keys(self, keys: KeyRing) -> None:
        self.registry.register(_KeyCollector(keys))

    def observe(self, event: Event) -> None:
        """The event subscriber: the security counters follow the audit events exactly."""
        if isinstance(event, RefreshReuseDetected):
            self.reuse_detected.inc()
        elif isinstance(event, TokenRevoked):
            self.revocations.labels(event.token_use).inc()
        elif isinstance(event, SessionsLoggedOut | UserDisabled):
            self.revocations.labels("session").inc()
        elif isinstance(event, LoginFailed):
            self.logins_failed.inc()
        elif isinstance(event, LoginRateLimited):
            self.logins_limited.inc()
        elif isinstance(event, DpopProofRefused):
            self.dpop_refused.labels(event.reason).inc()
        elif isinstance(event, _BROWSER_EVENTS):
            self.browser.labels(event.name).inc()
            if isinstance(event, CodeReused):
                self.revocations.labels("session").inc()
            elif isinstance(event, BrowserLoggedOut):
                self.revocations.labels("session").inc(event.count)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Request latency by route, and a request id for logs and the response."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        routes: frozenset[str],
        self_counted: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes  # route labels; any other path is "other" (bounded label values)
        # Paths whose endpoint counts its own answers (the JWKS: prebuilt bytes, the most
        # requested path; a request id and a histogram would cost more than the answer).
        self.self_counted = self_counted
        # The labelled children, looked up once per label set: ``labels()`` validates and
        # locks on every call (a few per cent of a refresh). Bounded: routes x methods x statuses.
        self._latency: dict[tuple[str, str], Histogram] = {}
        self._responses: dict[tuple[str, str, str], Counter] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.self_counted:
            await self.app(scope, receive, send)
            return
        offered = raw_header(scope, b"x-request-id")
        rid = new_request_id(offered.decode("latin-1") if offered is not None else None)
        token = request_id.set(rid)
        header = (b"x-request-id", rid.encode())
        status = "500"  # unless a response starts: an exception escaped to the guard

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = str(message["status"])
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        path = scope["path"]
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
            route = path if path in self.routes else "other"
            method = scope["method"] if scope["method"] in _METHODS else "other"
            elapsed = time.perf_counter() - start
            latency = self._latency.get((route, method))
            if latency is None:
                latency = self._latency[(route, method)] = self.metrics.latency.labels(route, method)
            latency.observe(elapsed)
            responses = self._responses.get((route, method, status))
            if responses is None:
                responses = self.metrics.responses.labels(route, method, status)
                self._responses[(route, method, status)] = responses
            responses.inc()
