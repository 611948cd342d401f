"""Login limits under attack (issue #13, findings 1, 2 and 18; CONTRACT.md "Trust rules").

Each attempt is reserved before the password is checked, so of a parallel
burst at most the limit is verified and the rest get 429; this holds on one
process, across ``--workers 2`` on SQLite and across two instances on
PostgreSQL, with and without Redis. The per-user counter is per (username,
address) under a per-username ceiling of ten times the limit, so a stranger
cannot lock a user out from everywhere. Failed client authentication counts
toward the per-address counter.
"""

from __future__ import annotations

import random
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import AppHarness, LiveServer, fresh_postgres_database
from tests.trust_support import (
    Request,
    add_confidential_client,
    assert_limited,
    audit_count,
    brief,
    burst,
    cli_env,
    cli_ok,
    live_servers,
    password_form,
    redis_url,
)

LIMIT = 3
BURST = 20
RIGHT = "right-password-1"  # at least AUTHSVC_PASSWORD_MIN_LENGTH characters


def _check_burst(responses: list[httpx.Response], right_index: int | None = None) -> tuple[int, bool]:
    """Every answer is a refusal of the right kind; (wrong passwords checked, right one logged in)."""
    wrong = 0
    logged_in = False
    for index, response in enumerate(responses):
        if response.status_code == 429:
            assert_limited(response)
        elif response.status_code == 200:
            assert index == right_index, brief(response)  # only the right password may log in
            logged_in = True
        else:
            assert response.status_code == 400, brief(response)
            assert response.json()["error"] == "invalid_grant"
            wrong += 1
    return wrong, logged_in


def _budget(logged_in: bool) -> int:
    """How many wrong passwords of one burst may be checked.

    At most LIMIT attempts hold a reservation at once, so without a success
    at most LIMIT are checked. A success releases its reservation and clears
    the (username, address) counter, so stragglers of the same burst may then
    reserve up to LIMIT more: LIMIT - 1 before it, LIMIT after.
    """
    return 2 * LIMIT - 1 if logged_in else LIMIT


async def _failed_logins(h: AppHarness) -> float:
    """authsvc_logins_failed_total: one per password actually checked and found wrong."""
    text = (await h.client.get("/metrics")).text
    match = re.search(r"^authsvc_logins_failed_total ([0-9.e+]+)$", text, re.MULTILINE)
    assert match is not None, text
    return float(match.group(1))


def _xff(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


# --- the ASGI harness: one process, plain behaviour --------------------------------------------
async def test_parallel_burst_of_wrong_passwords_checks_at_most_the_limit(
    harness_factory: Callable[..., Any],
) -> None:
    h: AppHarness = await harness_factory(login_max_per_user=LIMIT, login_max_per_address=100_000)
    for round_ in range(3):
        user = f"victim{round_}"
        await h.add_user(user, RIGHT)
        before = await _failed_logins(h)
        requests = [
            Request(h.settings.issuer, "/token", password_form(user, f"guess-password-{i}"))
            for i in range(BURST)
        ]
        checked, _ = _check_burst(await burst(requests, client=h.client))
        failed = await _failed_logins(h) - before
        assert checked <= LIMIT, f"round {round_}: {checked} of {BURST} passwords were checked"
        assert failed <= LIMIT, f"round {round_}: {failed} failed logins counted"


async def test_right_password_inside_a_parallel_burst_is_refused_unless_reserved(
    harness_factory: Callable[..., Any],
) -> None:
    h: AppHarness = await harness_factory(login_max_per_user=LIMIT, login_max_per_address=100_000)
    for round_ in range(3):
        user = f"target{round_}"
        await h.add_user(user, RIGHT)
        right_index = random.randrange(BURST)
        forms = [
            password_form(user, RIGHT if i == right_index else f"guess-password-{i}") for i in range(BURST)
        ]
        responses = await burst([Request(h.settings.issuer, "/token", f) for f in forms], client=h.client)
        checked, logged_in = _check_burst(responses, right_index)
        assert checked <= _budget(logged_in), (
            f"round {round_}: {checked} of {BURST - 1} wrong passwords were checked"
            + (" and the right one logged in" if logged_in else "")
        )


async def test_parallel_burst_against_the_per_address_limit(harness_factory: Callable[..., Any]) -> None:
    h: AppHarness = await harness_factory(login_max_per_user=100_000, login_max_per_address=LIMIT)
    forms = [password_form(f"spray{i}", "guess-password") for i in range(BURST)]
    responses = await burst([Request(h.settings.issuer, "/token", f) for f in forms], client=h.client)
    checked, _ = _check_burst(responses)
    assert checked <= LIMIT, f"{checked} of {BURST} passwords were checked"


async def test_failures_from_one_address_do_not_lock_the_user_out_from_another(
    harness_factory: Callable[..., Any],
) -> None:
    # The ASGI client's peer is 127.0.0.1, a trusted proxy here: X-Forwarded-For names the client.
    h: AppHarness = await harness_factory(
        login_max_per_user=LIMIT, login_max_per_address=100_000, trusted_proxies="127.0.0.1/32"
    )
    await h.add_user("alice", RIGHT)
    attacker, owner = "203.0.113.66", "198.51.100.20"
    for _ in range(LIMIT):
        r = await h.client.post(
            "/token", data=password_form("alice", "guess-password"), headers=_xff(attacker)
        )
        assert r.status_code == 400, brief(r)
    assert_limited(await h.client.post("/token", data=password_form("alice", RIGHT), headers=_xff(attacker)))
    ok = await h.client.post("/token", data=password_form("alice", RIGHT), headers=_xff(owner))
    assert ok.status_code == 200, f"the owner is locked out by a stranger's failures: {brief(ok)}"


async def test_per_username_ceiling_is_ten_times_the_limit(harness_factory: Callable[..., Any]) -> None:
    per_user = 2
    ceiling = 10 * per_user
    h: AppHarness = await harness_factory(
        login_max_per_user=per_user, login_max_per_address=100_000, trusted_proxies="127.0.0.1/32"
    )
    await h.add_user("alice", RIGHT)
    failures = 0
    address = 0
    while failures < ceiling - per_user:  # spread over addresses, never over one address's limit
        address += 1
        for _ in range(per_user):
            r = await h.client.post(
                "/token", data=password_form("alice", "guess-password"), headers=_xff(f"192.0.2.{address}")
            )
            assert r.status_code == 400, (
                f"{failures} failures spread over {address} addresses locked alice out: {brief(r)}"
            )
            failures += 1
    # below the ceiling, the owner still logs in from a fresh address
    ok = await h.client.post("/token", data=password_form("alice", RIGHT), headers=_xff("198.51.100.1"))
    assert ok.status_code == 200, f"{failures} failures spread over {address} addresses locked alice out"
    while failures < ceiling:
        address += 1
        r = await h.client.post(
            "/token", data=password_form("alice", "guess-password"), headers=_xff(f"192.0.2.{address}")
        )
        assert r.status_code == 400, (failures, brief(r))
        failures += 1
    # at the ceiling, every address is refused: distributed guessing stops
    for fresh in ("198.51.100.2", "192.0.2.250"):
        assert_limited(await h.client.post("/token", data=password_form("alice", RIGHT), headers=_xff(fresh)))


@pytest.fixture
def client_auth_harness(harness_factory: Callable[..., Any], tmp_path: Path) -> Callable[[], Any]:
    """A harness with a per-address limit of 3, a confidential client ``svc`` and a user."""

    async def build() -> tuple[AppHarness, str]:
        h: AppHarness = await harness_factory(
            login_max_per_user=100_000, login_max_per_address=LIMIT, trusted_proxies="127.0.0.1/32"
        )
        await h.add_user("alice", RIGHT)
        secret = add_confidential_client(cli_env(tmp_path), "svc")
        return h, secret

    return build


async def test_failed_client_authentication_counts_per_address(
    client_auth_harness: Callable[[], Any],
) -> None:
    h, secret = await client_auth_harness()
    attacker, other = "203.0.113.9", "198.51.100.9"
    cc = {"grant_type": "client_credentials"}
    failures = [
        await h.client.post("/token", data=cc, auth=("svc", "wrong-secret"), headers=_xff(attacker)),
        await h.client.post(
            "/token",
            data={**cc, "client_id": f"ghost-{secrets.token_hex(4)}", "client_secret": "x" * 43},
            headers=_xff(attacker),
        ),
        await h.client.post(
            "/token",
            data={
                **cc,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJzdmMifQ.c2ln",
            },
            headers=_xff(attacker),
        ),
    ]
    for response in failures:
        assert response.status_code == 401, brief(response)
    limited = await h.client.post("/token", data=cc, auth=("svc", secret), headers=_xff(attacker))
    assert limited.status_code == 429, (
        f"three failed client authentications were not counted: {brief(limited)}"
    )
    assert int(limited.headers["retry-after"]) >= 1
    assert_limited(await h.client.post("/token", data=password_form("alice", RIGHT), headers=_xff(attacker)))
    # another address is untouched
    ok = await h.client.post("/token", data=cc, auth=("svc", secret), headers=_xff(other))
    assert ok.status_code == 200, brief(ok)


async def test_failed_client_authentication_at_revoke_and_introspect_counts_too(
    client_auth_harness: Callable[[], Any],
) -> None:
    h, secret = await client_auth_harness()
    attacker = "203.0.113.10"
    for path in ("/revoke", "/introspect", "/introspect"):
        r = await h.client.post(
            path, data={"token": "x"}, auth=("svc", "wrong-secret"), headers=_xff(attacker)
        )
        assert r.status_code == 401, brief(r)
    limited = await h.client.post(
        "/token", data={"grant_type": "client_credentials"}, auth=("svc", secret), headers=_xff(attacker)
    )
    assert limited.status_code == 429, f"failed client authentication was not counted: {brief(limited)}"


# --- live servers: one process, two workers, two instances ------------------------------------
LIVE_LIMITS = {
    "login_max_per_user": str(LIMIT),
    "login_max_per_address": "100000",
    "login_window": "120",
    # a little argon2 work per check, as in production the hash is what a guesser waits on
    "argon2_memory_kib": "2048",
    "argon2_time_cost": "1",
}


@pytest.fixture(
    params=["one-process", "workers-2-sqlite", "two-instances-postgresql", "two-instances-postgresql-redis"]
)
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[LiveServer]]:
    settings = dict(LIVE_LIMITS)
    if request.param == "one-process":
        with live_servers(tmp_path, **settings) as servers:
            yield servers
        return
    if request.param == "workers-2-sqlite":
        with live_servers(
            tmp_path, extra_args=("--workers", "2"), issuer="http://127.0.0.1:9131", **settings
        ) as servers:
            yield servers
        return
    if request.param.endswith("-redis"):
        settings["redis_url"] = redis_url()
    url, drop = fresh_postgres_database()
    try:
        with live_servers(
            tmp_path, 2, database_url=url, issuer="http://127.0.0.1:9132", **settings
        ) as servers:
            yield servers
    finally:
        drop()


@pytest.mark.slow
async def test_parallel_burst_on_a_live_deployment(deployment: list[LiveServer]) -> None:
    servers = deployment
    for round_ in range(4):
        user = f"burst{round_}-{secrets.token_hex(3)}"  # Redis outlives the test: a name of our own
        cli_ok(servers[0].env, "users", "add", user, "--password-stdin", input=RIGHT + "\n")
        right_index = random.randrange(BURST) if round_ % 2 else None  # 19 wrong + the right one
        requests = [
            Request(
                servers[i % len(servers)].url,
                "/token",
                password_form(user, RIGHT if i == right_index else f"guess-password-{i}"),
            )
            for i in range(BURST)
        ]
        before = audit_count(servers, "login.failed")
        checked, logged_in = _check_burst(await burst(requests), right_index)
        failed = audit_count(servers, "login.failed") - before
        budget = _budget(logged_in)
        assert checked <= budget, f"round {round_}: {checked} wrong passwords of {BURST} were checked" + (
            " and the right one logged in" if logged_in else ""
        )
        assert failed <= budget, f"round {round_}: {failed} login.failed audit lines"
