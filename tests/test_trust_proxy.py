"""X-Forwarded-For under attack (issue #13, finding 4; CONTRACT.md "Trust rules").

``X-Forwarded-For`` is read only when the TCP peer is in
``AUTHSVC_TRUSTED_PROXIES``; all its header lines form one list (RFC 9110
§5.3) and the client is the rightmost entry that is not a trusted proxy. The
web server's own proxy-header handling is off. Observed through the
per-address login limit: requests that must count as one address hit 429.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import AppHarness
from tests.trust_support import assert_limited, brief, live_servers, password_form

LIMIT = 3
CLIENT = "198.51.100.7"
_names = itertools.count()


def _wrong(headers: list[tuple[str, str]]) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """A wrong password for a fresh user name (only the per-address counter may fill)."""
    return password_form(f"user{next(_names)}", "wrong-password"), headers


async def _post(client: httpx.AsyncClient, headers: list[tuple[str, str]]) -> httpx.Response:
    data, headers = _wrong(headers)
    return await client.post("/token", data=data, headers=headers)


async def test_every_forwarded_for_line_is_read_and_the_rightmost_untrusted_is_the_client(
    harness_factory: Callable[..., Any],
) -> None:
    # The ASGI client's peer is 127.0.0.1: a trusted proxy that appends its own header line.
    h: AppHarness = await harness_factory(
        login_max_per_user=100_000, login_max_per_address=LIMIT, trusted_proxies="127.0.0.1/32"
    )
    for i in range(LIMIT):
        forged = [("X-Forwarded-For", f"203.0.113.{i + 1}"), ("X-Forwarded-For", CLIENT)]
        r = await _post(h.client, forged)
        assert r.status_code == 400, brief(r)
    # the attacker rotated the forged first line; the proxy's line still names the same client
    limited = await _post(h.client, [("X-Forwarded-For", "203.0.113.200"), ("X-Forwarded-For", CLIENT)])
    assert limited.status_code == 429, (
        f"a forged first X-Forwarded-For line evaded the limit: {brief(limited)}"
    )
    assert_limited(limited)
    assert_limited(await _post(h.client, [("X-Forwarded-For", CLIENT)]))


_untrusted = st.builds(lambda a, b: f"203.0.{a}.{b}", st.integers(0, 255), st.integers(1, 254))
_trusted_hop = st.sampled_from(["10.0.0.5", "10.1.2.3", "127.0.0.1"])


_shared: dict[int, AppHarness] = {}


async def _one_harness(factory: Callable[..., Any], **overrides: Any) -> AppHarness:
    """One harness per test run, shared by its hypothesis examples (each uses fresh addresses)."""
    if id(factory) not in _shared:
        _shared.clear()
        _shared[id(factory)] = await factory(**overrides)
    return _shared[id(factory)]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    forged=st.lists(_untrusted, max_size=3),
    proxies=st.lists(_trusted_hop, max_size=3),
    cuts=st.sets(st.integers(1, 7), max_size=4),
)
async def test_how_the_hops_are_split_into_lines_does_not_matter(
    harness_factory: Callable[..., Any], forged: list[str], proxies: list[str], cuts: set[int]
) -> None:
    h = await _one_harness(
        harness_factory,
        login_max_per_user=100_000,
        login_max_per_address=LIMIT,
        trusted_proxies="127.0.0.1/32 10.0.0.0/8",
    )
    client = f"2001:db8::{next(_names):x}"  # a fresh client address per example
    hops = [*forged, client, *proxies]
    bounds = [0, *sorted(c for c in cuts if c < len(hops)), len(hops)]
    lines = [", ".join(hops[a:b]) for a, b in itertools.pairwise(bounds) if b > a]
    headers = [("X-Forwarded-For", line) for line in lines]
    for _ in range(LIMIT):
        r = await _post(h.client, headers)
        assert r.status_code in (400, 429), brief(r)
    # the same client, named on one line: its counter is full whatever the split was
    limited = await _post(h.client, [("X-Forwarded-For", client)])
    assert limited.status_code == 429, (lines, brief(limited))


# --- a real server: uvicorn's own proxy-header handling must not decide ----------------------
@pytest.mark.slow
@pytest.mark.parametrize("trusted", ["", "10.0.0.0/8"], ids=["no-trusted-proxies", "peer-not-trusted"])
def test_live_server_ignores_forwarded_for_from_an_untrusted_peer(tmp_path: Path, trusted: str) -> None:
    settings = {"login_max_per_user": "100000", "login_max_per_address": str(LIMIT)}
    if trusted:
        settings["trusted_proxies"] = trusted
    with live_servers(tmp_path, **settings) as (server,), httpx.Client(base_url=server.url) as http:
        for i in range(LIMIT):
            data, headers = _wrong([("X-Forwarded-For", f"203.0.113.{i + 1}")])
            r = http.post("/token", data=data, headers=headers)
            assert r.status_code == 400, brief(r)
        data, headers = _wrong([("X-Forwarded-For", "203.0.113.99")])
        limited = http.post("/token", data=data, headers=headers)
        assert limited.status_code == 429, (
            f"a forged X-Forwarded-For from an untrusted peer was believed: {brief(limited)}"
        )
        assert_limited(limited)


@pytest.mark.slow
def test_live_server_joins_forwarded_for_lines_behind_a_proxy_chain(tmp_path: Path) -> None:
    # client -> edge proxy (adds the client's address) -> internal proxy 10.0.0.5 -> authsvc
    settings = {
        "login_max_per_user": "100000",
        "login_max_per_address": str(LIMIT),
        "trusted_proxies": "127.0.0.1/32, 10.0.0.0/8",
    }
    with live_servers(tmp_path, **settings) as (server,), httpx.Client(base_url=server.url) as http:
        for i in range(LIMIT + 1):
            data, headers = _wrong(
                [("X-Forwarded-For", f"203.0.113.{i + 1}"), ("X-Forwarded-For", f"{CLIENT}, 10.0.0.5")]
            )
            r = http.post("/token", data=data, headers=headers)
            if i < LIMIT:
                assert r.status_code == 400, brief(r)
            else:
                assert r.status_code == 429, f"a forged first line evaded the limit: {brief(r)}"
                assert_limited(r)
