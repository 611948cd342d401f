"""Failed-login limits: per user and per address, 429 + Retry-After, shared through Redis."""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from authsvc.addresses import client_address
from tests.support import AppHarness, LiveServer, start_server, stop_server


def redis_url() -> str:
    url = os.environ.get("AUTHSVC_TEST_REDIS_URL")
    if not url:
        pytest.skip("AUTHSVC_TEST_REDIS_URL is not set: Redis tests skipped")
    return url


async def _wrong(h: AppHarness, user: str = "alice", **headers: str) -> httpx.Response:
    return await h.client.post(
        "/token",
        data={"grant_type": "password", "username": user, "password": "wrong"},
        headers=headers,
    )


async def test_thirty_wrong_passwords_are_limited(harness_factory) -> None:  # type: ignore[no-untyped-def]
    h: AppHarness = await harness_factory()
    await h.add_user()
    await h.add_user("bob", "bob-password")
    codes = [(await _wrong(h)).status_code for _ in range(30)]
    assert codes[:10] == [400] * 10
    assert set(codes[10:]) == {429}
    limited = await _wrong(h)
    assert limited.status_code == 429
    assert limited.json()["error"] == "invalid_grant"
    assert 1 <= int(limited.headers["retry-after"]) <= h.settings.login_window
    # even the right password is refused while limited: no oracle for the guesser
    assert (await h.login()).status_code == 429
    # another user still logs in
    assert (await h.login("bob", "bob-password")).status_code == 200


async def test_success_clears_only_that_users_counter(harness_factory) -> None:  # type: ignore[no-untyped-def]
    h: AppHarness = await harness_factory(login_max_per_user=3, login_max_per_address=100)
    await h.add_user()
    await h.add_user("bob", "bob-password")
    for _ in range(2):
        assert (await _wrong(h)).status_code == 400
        assert (await _wrong(h, "bob")).status_code == 400
    assert (await h.login()).status_code == 200  # clears alice only
    assert (await _wrong(h)).status_code == 400
    assert (await _wrong(h)).status_code == 400
    assert (await _wrong(h, "bob")).status_code == 400  # bob's third failure
    assert (await h.login("bob", "bob-password")).status_code == 429


async def test_per_address_limit(harness_factory) -> None:  # type: ignore[no-untyped-def]
    h: AppHarness = await harness_factory(login_max_per_user=100, login_max_per_address=5)
    await h.add_user()
    for i in range(5):
        assert (await _wrong(h, f"nobody{i}")).status_code == 400
    assert (await _wrong(h, "someone-else")).status_code == 429
    assert (await h.login()).status_code == 429  # same address


async def test_forwarded_for_only_from_trusted_proxies(harness_factory) -> None:  # type: ignore[no-untyped-def]
    # the ASGI test client's peer is 127.0.0.1
    h: AppHarness = await harness_factory(
        login_max_per_user=100, login_max_per_address=2, trusted_proxies="127.0.0.1/32"
    )
    for i in range(2):
        assert (await _wrong(h, f"x{i}", **{"X-Forwarded-For": "203.0.113.7"})).status_code == 400
    assert (await _wrong(h, "x9", **{"X-Forwarded-For": "203.0.113.7"})).status_code == 429
    # another client behind the same proxy is not affected
    assert (await _wrong(h, "x9", **{"X-Forwarded-For": "203.0.113.8"})).status_code == 400


def test_client_address_ignores_untrusted_forwarding() -> None:
    trusted = [ipaddress.ip_network("10.0.0.0/8")]
    assert client_address("198.51.100.1", ["203.0.113.7"], trusted) == "198.51.100.1"
    assert client_address("10.0.0.5", ["203.0.113.7"], trusted) == "203.0.113.7"
    assert client_address("10.0.0.5", ["203.0.113.7, 10.0.0.9"], trusted) == "203.0.113.7"
    assert client_address(None, [], trusted) == "unknown"


def test_client_address_is_the_rightmost_untrusted_hop_of_every_line() -> None:
    """RFC 9110 §5.3: header lines join into one list; what the client wrote comes first."""
    trusted = [ipaddress.ip_network("10.0.0.0/8")]
    forged_then_real = ["198.51.100.66", "203.0.113.7"]  # the client's own line, then the proxy's
    assert client_address("10.0.0.5", forged_then_real, trusted) == "203.0.113.7"
    assert client_address("10.0.0.5", ["1.1.1.1, 203.0.113.7", "10.0.0.9"], trusted) == "203.0.113.7"
    assert client_address("10.0.0.5", ["[2001:db8::1]:443"], trusted) == "2001:db8::1"
    assert client_address("10.0.0.5", ["203.0.113.7:5555"], trusted) == "203.0.113.7"
    # junk as the client's hop is its own key, never the proxy's address (shared by everyone)
    assert client_address("10.0.0.5", ["not-an-ip"], trusted) == "not-an-ip"
    assert client_address("10.0.0.5", ["x" * 500], trusted) == "x" * 64
    # only trusted hops: the leftmost
    assert client_address("10.0.0.5", ["10.1.1.1, 10.0.0.9"], trusted) == "10.1.1.1"


async def test_redis_unreachable_falls_back_to_database_counters(
    harness_factory, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    h: AppHarness = await harness_factory(redis_url="redis://127.0.0.1:1/0", login_max_per_user=2)
    await h.add_user()
    assert [(await _wrong(h)).status_code for _ in range(3)] == [400, 400, 429]
    assert h.services.login_limiter.backend == "database (redis unreachable)"
    ready = (await h.client.get("/readyz")).json()
    assert ready["status"] == "ready"  # Redis is reported, never a reason for 503
    assert ready["redis"].startswith("unavailable")
    assert any("redis unreachable" in r.getMessage() for r in caplog.records)


async def test_limits_are_shared_through_redis(harness_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Two apps on separate databases: only Redis can carry the count from one to the other."""
    url = redis_url()
    user = "dave-" + secrets.token_hex(4)
    limits = {"redis_url": url, "login_max_per_user": 3}
    a: AppHarness = await harness_factory(**limits)
    b: AppHarness = await harness_factory(database_url=f"sqlite:///{tmp_path / 'b.db'}", **limits)
    await a.add_user(user)
    await b.add_user(user)
    for h in (a, b, a):
        assert (await _wrong(h, user)).status_code == 400
    assert (await _wrong(b, user)).status_code == 429
    assert (await b.login(user)).status_code == 429  # the right password too: no oracle
    assert (await a.client.get("/readyz")).json()["redis"] == "ok"


@pytest.fixture
def redis_pair(tmp_path: Path) -> Iterator[tuple[LiveServer, LiveServer]]:
    url = redis_url()
    settings = {"redis_url": url, "login_max_per_user": "5", "issuer": "http://127.0.0.1:9102"}
    a = start_server(tmp_path, **settings)
    b = start_server(tmp_path, **settings)
    try:
        yield a, b
    finally:
        stop_server(a)
        stop_server(b)


@pytest.mark.slow
def test_brute_force_across_two_instances_through_redis(redis_pair: tuple[LiveServer, LiveServer]) -> None:
    a, b = redis_pair
    user = "erin-" + secrets.token_hex(4)
    assert a.cli("users", "add", user, "--password-stdin", input="erin-pass\n").returncode == 0
    assert a.cli("users", "add", user + "-other", "--password-stdin", input="other-pass\n").returncode == 0
    codes = []
    for i in range(30):
        server = (a, b)[i % 2]
        r = httpx.post(
            server.url + "/token", data={"grant_type": "password", "username": user, "password": "no"}
        )
        codes.append(r.status_code)
    assert codes[:5] == [400] * 5
    assert set(codes[5:]) == {429}, codes
    r = httpx.post(b.url + "/token", data={"grant_type": "password", "username": user, "password": "no"})
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) >= 1
    ok = httpx.post(
        a.url + "/token",
        data={"grant_type": "password", "username": user + "-other", "password": "other-pass"},
    )
    assert ok.status_code == 200
    ready = httpx.get(b.url + "/readyz").json()
    assert ready["redis"] == "ok"
