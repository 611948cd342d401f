"""/metrics: every series operators alert on exists, and moves when its event happens over HTTP."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from authsvc.keys.rotation import rotate
from authsvc.keys.setup import lifetimes
from authsvc.logs import new_request_id
from tests.support import AppHarness
from tests.test_fault_injection import Outage

SERIES = [
    "authsvc_tokens_issued_total",
    "authsvc_token_errors_total",
    "authsvc_refresh_reuse_detected_total",
    "authsvc_revocations_total",
    "authsvc_logins_failed_total",
    "authsvc_logins_rate_limited_total",
    "authsvc_jwks_requests_total",
    "authsvc_signing_key_age_seconds",
    "authsvc_seconds_until_key_change",
    "authsvc_rotation_overdue",
    "authsvc_rotation_due_seconds",
    "authsvc_request_duration_seconds_bucket",
    "authsvc_http_responses_total",
]


class Scrape:
    def __init__(self, text: str) -> None:
        self.samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self.names: set[str] = set()
        for family in text_string_to_metric_families(text):
            self.names.add(family.name)
            for sample in family.samples:
                self.samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
                self.names.add(sample.name)

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(harness: AppHarness) -> Scrape:
    response = await harness.client.get("/metrics")
    assert response.status_code == 200, f"expected /metrics to answer, got {response.status_code}"
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)


class Delta:
    """Counter values before and after a block of requests."""

    def __init__(self, harness: AppHarness) -> None:
        self.harness = harness
        self.before: Scrape | None = None
        self.after: Scrape | None = None

    async def __aenter__(self) -> Delta:
        self.before = await scrape(self.harness)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.after = await scrape(self.harness)

    def __call__(self, name: str, **labels: str) -> float:
        assert self.before is not None and self.after is not None
        return self.after.value(name, **labels) - self.before.value(name, **labels)


CLIENT_ID = "reports"


@pytest.fixture
async def harness(harness_factory: Callable[..., Any]) -> tuple[AppHarness, str]:
    h: AppHarness = await harness_factory(
        signing_alg="EdDSA", login_max_per_user=2, key_rotation_period=3600, key_prepublish=600
    )
    await h.add_user()
    secret = await h.add_service_client(CLIENT_ID, scopes=frozenset({"read"}), audiences=("orders-api",))
    return h, secret


async def test_every_series_is_exposed(harness: tuple[AppHarness, str]) -> None:
    h, _ = harness
    await h.login()
    await h.login(password="wrong")
    await h.client.get("/.well-known/jwks.json")
    names = (await scrape(h)).names
    missing = [name for name in SERIES if name not in names]
    assert not missing, f"expected every series on /metrics, missing {missing}"


async def test_tokens_issued_by_grant(harness: tuple[AppHarness, str]) -> None:
    h, secret = harness
    async with Delta(h) as delta:
        tokens = (await h.login()).json()
        assert (await h.refresh(tokens["refresh_token"])).status_code == 200
        m2m = await h.client.post(
            "/token", data={"grant_type": "client_credentials"}, auth=(CLIENT_ID, secret)
        )
        assert m2m.status_code == 200
    for grant in ("password", "refresh_token", "client_credentials"):
        assert delta("authsvc_tokens_issued_total", grant=grant) == 1, f"expected one {grant} token counted"


async def test_token_errors_by_code(harness: tuple[AppHarness, str]) -> None:
    h, _ = harness
    async with Delta(h) as delta:
        await h.login(password="wrong")
        await h.client.post("/token", data={"grant_type": "implicit"})
        await h.client.post("/token", data={"grant_type": "client_credentials"}, auth=(CLIENT_ID, "nope"))
        await h.client.post("/token", data={"grant_type": "password"})
        await h.me("garbage")
    expected = {
        "invalid_grant": 1,
        "unsupported_grant_type": 1,
        "invalid_client": 1,
        "invalid_request": 1,
        "invalid_token": 1,
    }
    for code, count in expected.items():
        assert delta("authsvc_token_errors_total", error=code) == count, f"expected {count} {code} counted"


async def test_temporarily_unavailable_and_5xx_are_counted(harness: tuple[AppHarness, str]) -> None:
    h, _ = harness
    outage = Outage(h.services)
    async with Delta(h) as delta:
        try:
            await outage.start()
            assert (await h.login()).status_code == 503
        finally:
            outage.stop()
            outage.remove()
    assert delta("authsvc_token_errors_total", error="temporarily_unavailable") == 1
    assert delta("authsvc_http_responses_total", route="/token", method="POST", status="503") == 1, (
        "expected the 503 counted by route and status"
    )


async def test_refresh_reuse_detected(harness: tuple[AppHarness, str]) -> None:
    h, _ = harness
    tokens = (await h.login()).json()
    assert (await h.refresh(tokens["refresh_token"])).status_code == 200
    async with Delta(h) as delta:
        assert (await h.refresh(tokens["refresh_token"])).json()["error"] == "invalid_grant"
    assert delta("authsvc_refresh_reuse_detected_total") == 1, "expected the replay counted as reuse"


async def test_revocations_by_token_use(harness: tuple[AppHarness, str]) -> None:
    h, _ = harness
    tokens = (await h.login()).json()
    async with Delta(h) as delta:
        assert (await h.client.post("/revoke", data={"token": tokens["access_token"]})).status_code == 200
        assert (await h.client.post("/revoke", data={"token": tokens["refresh_token"]})).status_code == 200
        assert (await h.client.post("/revoke", data={"token": "garbage"})).status_code == 200
    assert delta("authsvc_revocations_total", token_use="access_token") == 1
    assert delta("authsvc_revocations_total", token_use="refresh_token") == 1


async def test_logins_failed_and_rate_limited(harness: tuple[AppHarness, str]) -> None:
    h, _ = harness
    async with Delta(h) as delta:
        for _ in range(2):
            assert (await h.login(password="wrong")).status_code == 400
        assert (await h.login(password="wrong")).status_code == 429
        assert (await h.login()).status_code == 429
    assert delta("authsvc_logins_failed_total") == 2, "expected each wrong password counted once"
    assert delta("authsvc_logins_rate_limited_total") == 2, "expected each limited login counted"


async def test_jwks_requests_by_status(harness: tuple[AppHarness, str]) -> None:
    h, _ = harness
    async with Delta(h) as delta:
        first = await h.client.get("/.well-known/jwks.json")
        await h.client.get("/.well-known/jwks.json", headers={"If-None-Match": first.headers["etag"]})
        await h.client.get("/.well-known/jwks.json")
    assert delta("authsvc_jwks_requests_total", status="200") == 2
    assert delta("authsvc_jwks_requests_total", status="304") == 1


async def test_key_gauges_follow_the_clock_and_rotation(harness: tuple[AppHarness, str]) -> None:
    h, _ = harness
    start = await scrape(h)
    age = start.value("authsvc_signing_key_age_seconds")
    due = start.value("authsvc_rotation_due_seconds")
    assert start.value("authsvc_rotation_overdue") == 0, "expected a fresh key not overdue"
    assert due == pytest.approx(3600 - age), f"expected the period's end counted down, got {due}"
    # One key and no successor: it signs on, nothing is scheduled to change.
    assert start.value("authsvc_seconds_until_key_change") == math.inf

    h.clock.advance(100)
    later = await scrape(h)
    assert later.value("authsvc_signing_key_age_seconds") == pytest.approx(age + 100)
    assert later.value("authsvc_rotation_due_seconds") == pytest.approx(due - 100)

    h.clock.advance(3600)  # past the rotation period, and nothing rotated
    overdue = await scrape(h)
    assert overdue.value("authsvc_rotation_overdue") == 1, "expected rotation overdue without a successor"
    assert overdue.value("authsvc_rotation_due_seconds") < 0, "expected a negative countdown when overdue"

    rotate(h.services.key_watcher.store, lifetimes(h.settings), h.clock, "EdDSA", None, force=True)
    h.services.key_watcher.load()
    rotated = await scrape(h)
    assert rotated.value("authsvc_rotation_overdue") == 0, "expected a pending successor to clear overdue"
    until = rotated.value("authsvc_seconds_until_key_change")
    assert 0 < until <= 600 + 5, f"expected the countdown to the successor's start, got {until}"
    h.clock.advance(60)
    assert (await scrape(h)).value("authsvc_seconds_until_key_change") == pytest.approx(until - 60)


async def test_latency_histogram_and_responses_by_route(harness: tuple[AppHarness, str]) -> None:
    h, _ = harness
    async with Delta(h) as delta:
        await h.login()
        await h.client.get("/healthz")
        await h.client.get("/no/such/path")
        await h.client.get("/another/unknown")
    count = "authsvc_request_duration_seconds_count"
    assert delta(count, route="/token", method="POST") == 1, "expected one /token observation"
    assert delta(count, route="/healthz", method="GET") == 1
    assert delta(count, route="other", method="GET") == 2, "expected unknown paths folded into one label"
    assert delta("authsvc_http_responses_total", route="/token", method="POST", status="200") == 1
    assert delta("authsvc_http_responses_total", route="other", method="GET", status="404") == 2


async def test_request_id_is_echoed_or_made(harness: tuple[AppHarness, str]) -> None:
    h, _ = harness
    given = await h.client.get("/healthz", headers={"X-Request-ID": "trace-42.a_b"})
    assert given.headers["x-request-id"] == "trace-42.a_b", "expected a sane request id echoed"
    for hostile in (b"x" * 100, b"a b", "é".encode(), b"<script>", b"a\x00b"):
        response = await h.client.get("/healthz", headers={"X-Request-ID": hostile})
        assert response.headers["x-request-id"].encode() != hostile, f"expected {hostile!r} replaced"
        assert len(response.headers["x-request-id"]) == 16


async def test_made_request_ids_are_distinct(harness: tuple[AppHarness, str]) -> None:
    h, _ = harness
    made = [(await h.client.get("/healthz")).headers["x-request-id"] for _ in range(20)]
    assert len(set(made)) == len(made), "expected every made request id distinct"


def test_a_forked_worker_makes_request_ids_of_its_own() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a forked worker: its ids must not repeat the parent's
        os.write(write, new_request_id(None).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    assert len(child) == 16
    assert child[:8] != new_request_id(None)[:8], "expected a forked process to draw its own prefix"


async def test_events_of_another_app_in_the_process_are_not_counted(
    harness: tuple[AppHarness, str], harness_factory: Callable[..., Any], tmp_path: Any
) -> None:
    h, _ = harness
    other: AppHarness = await harness_factory(
        signing_alg="EdDSA", database_url=f"sqlite:///{tmp_path / 'other.db'}"
    )
    await other.add_user()
    async with Delta(h) as delta:
        assert (await other.login(password="wrong")).status_code == 400
    assert delta("authsvc_logins_failed_total") == 0, "expected only this app's failures counted"


async def test_metrics_body_has_no_token_material(harness: tuple[AppHarness, str]) -> None:
    h, _ = harness
    tokens = (await h.login()).json()
    await h.refresh(tokens["refresh_token"])
    text = (await h.client.get("/metrics")).text
    for value in (tokens["access_token"], tokens["refresh_token"]):
        for part in value.split("."):
            assert part not in text
