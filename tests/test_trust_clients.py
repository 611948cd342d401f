"""Client authentication and the client registry under attack (issue #13, findings 5, 9, 15).

- Unknown or public client ids never cost a password hash: measured as the
  CPU time of the process serving the requests (``/proc``), batch against batch.
- Removing a client revokes its sessions, its tokens introspect as inactive,
  and a removed id is never revived by adding it again.
- An ``Authorization`` header that is not Basic at ``/token``, ``/revoke`` and
  ``/introspect`` is 401 ``invalid_client``, whatever the form carries.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import AppHarness, run_cli
from tests.trust_support import (
    REAL_ARGON2,
    add_confidential_client,
    assert_one_line_error,
    brief,
    cli_env,
    cli_ok,
    live_servers,
    password_form,
    process_tree_cpu,
)

PASSWORD = "alice-password-1"
BATCH = 40


# --- finding 5: unknown and public ids never cost a hash -----------------------------------------
def _batches(secret_client: str) -> dict[str, list[dict[str, Any]]]:
    """The request batches to compare: each a list of httpx request arguments."""
    cc = {"grant_type": "client_credentials"}

    def unknown() -> str:
        return f"ghost-{secrets.token_hex(6)}"

    return {
        "known id, wrong secret": [
            {"url": "/token", "data": cc, "auth": (secret_client, "wrong-secret-" + str(i))}
            for i in range(BATCH)
        ],
        "unknown ids, Basic": [
            {"url": "/token", "data": cc, "auth": (unknown(), "some-secret-value")} for _ in range(BATCH)
        ],
        "public id with a secret, Basic": [
            {"url": "/token", "data": cc, "auth": ("cli", f"some-secret-{i}")} for i in range(BATCH)
        ],
        "unknown ids, client_secret_post": [
            {"url": "/token", "data": {**cc, "client_id": unknown(), "client_secret": "some-secret-value"}}
            for _ in range(BATCH)
        ],
        "unknown ids, Basic at /introspect": [
            {"url": "/introspect", "data": {"token": "x"}, "auth": (unknown(), "some-secret-value")}
            for _ in range(BATCH)
        ],
    }


def _judge(costs: dict[str, float], hash_cost: float) -> list[str]:
    """Each batch costs about what the known-id batch costs, and far less than 40 hashes."""
    known = costs["known id, wrong secret"]
    problems = []
    for name, cost in costs.items():
        if cost > 3 * known + 0.15 or cost > 8 * hash_cost:
            problems.append(
                f"{name}: {cost:.2f} s CPU for {BATCH} requests "
                f"(known id: {known:.2f} s; one hash ≈ {hash_cost * 1000:.0f} ms, "
                f"i.e. {cost / hash_cost:.0f} hashes)"
            )
    return problems


async def test_unknown_client_ids_cost_no_hash_in_process(
    harness_factory: Callable[..., Any], tmp_path: Path
) -> None:
    real = {name: int(value) for name, value in REAL_ARGON2.items()}
    h: AppHarness = await harness_factory(login_max_per_user=100_000, login_max_per_address=100_000, **real)
    await h.add_user("alice", PASSWORD)
    secret_client = "svc"
    add_confidential_client(cli_env(tmp_path), secret_client)
    me = os.getpid()
    # one hash, measured here: wrong passwords of a real user (each is one verification)
    before = process_tree_cpu(me)
    for i in range(5):
        r = await h.client.post("/token", data=password_form("alice", f"wrong-password-{i}"))
        assert r.status_code == 400, brief(r)
    hash_cost = max((process_tree_cpu(me) - before) / 5, 0.005)
    costs: dict[str, float] = {}
    for name, batch in _batches(secret_client).items():
        before = process_tree_cpu(me)
        for kwargs in batch:
            r = await h.client.post(**kwargs)
            assert r.status_code == 401, (name, brief(r))
        costs[name] = process_tree_cpu(me) - before
    problems = _judge(costs, hash_cost)
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_unknown_client_ids_cost_no_hash_on_a_live_server(tmp_path: Path) -> None:
    settings = {**REAL_ARGON2, "login_max_per_user": "100000", "login_max_per_address": "100000"}
    with live_servers(tmp_path, **settings) as (server,), httpx.Client(base_url=server.url) as http:
        cli_ok(server.env, "users", "add", "alice", "--password-stdin", input=PASSWORD + "\n")
        secret_client = "svc"
        add_confidential_client(server.env, secret_client)
        pid = server.process.pid
        http.get("/healthz")
        before = process_tree_cpu(pid)
        for i in range(5):
            r = http.post("/token", data=password_form("alice", f"wrong-password-{i}"))
            assert r.status_code == 400, brief(r)
        hash_cost = max((process_tree_cpu(pid) - before) / 5, 0.005)
        costs: dict[str, float] = {}
        for name, batch in _batches(secret_client).items():
            before = process_tree_cpu(pid)
            for kwargs in batch:
                r = http.post(**kwargs)
                assert r.status_code == 401, (name, brief(r))
            costs[name] = process_tree_cpu(pid) - before
    problems = _judge(costs, hash_cost)
    assert not problems, "\n".join(problems)


# --- finding 9: removed clients ------------------------------------------------------------------
async def _introspect(h: AppHarness, auth: tuple[str, str], token: str) -> dict[str, Any]:
    r = await h.client.post("/introspect", data={"token": token}, auth=auth)
    assert r.status_code == 200, brief(r)
    return r.json()  # type: ignore[no-any-return]


async def test_removing_a_client_ends_its_sessions_and_its_tokens(
    db_harness_factory: Callable[..., Any], database_url: str, tmp_path: Path
) -> None:
    h: AppHarness = await db_harness_factory()
    env = cli_env(tmp_path, database_url=database_url)
    cli_ok(env, "users", "add", "alice", "--password-stdin", "--scope", "read", input=PASSWORD + "\n")
    cli_ok(env, "clients", "add", "mobile", "--public", "--grant", "password", "--grant", "refresh_token")
    web_secret = add_confidential_client(env, "web", "password", "refresh_token")
    svc_secret = add_confidential_client(env, "svc")
    inspector = ("inspector", add_confidential_client(env, "inspector"))

    mobile = (await h.client.post("/token", data=password_form("alice", PASSWORD, client_id="mobile"))).json()
    web = (
        await h.client.post("/token", data=password_form("alice", PASSWORD), auth=("web", web_secret))
    ).json()
    service = await h.client.post(
        "/token", data={"grant_type": "client_credentials"}, auth=("svc", svc_secret)
    )
    assert service.status_code == 200, brief(service)
    service_token = service.json()["access_token"]
    for tokens in (mobile, web):
        assert (await _introspect(h, inspector, tokens["access_token"]))["active"] is True

    for client_id in ("mobile", "web", "svc"):
        cli_ok(env, "clients", "remove", client_id)
    await asyncio.sleep(1.1)  # CONTRACT.md: revocations reach /users/me within 1 s

    for name, tokens in (("public", mobile), ("confidential", web)):
        me = await h.client.get("/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert me.status_code == 401, (
            f"{name} client removed, its user's access token still works: {brief(me)}"
        )
        for kind in ("access_token", "refresh_token"):
            answer = await _introspect(h, inspector, tokens[kind])
            assert answer == {"active": False}, f"{name} client removed, its {kind} introspects {answer}"
    answer = await _introspect(h, inspector, service_token)
    assert answer == {"active": False}, f"client removed, its client_credentials token introspects {answer}"
    # its refresh tokens are dead whoever presents them
    r = await h.client.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": mobile["refresh_token"]}
    )
    assert r.status_code in (400, 401), brief(r)


async def test_a_removed_client_id_is_never_revived(
    db_harness_factory: Callable[..., Any], database_url: str, tmp_path: Path
) -> None:
    h: AppHarness = await db_harness_factory()
    env = cli_env(tmp_path, database_url=database_url)
    cli_ok(env, "users", "add", "alice", "--password-stdin", "--scope", "read", input=PASSWORD + "\n")
    public = ("clients", "add", "mobile", "--public", "--grant", "password", "--grant", "refresh_token")
    cli_ok(env, *public)
    add_confidential_client(env, "svc")
    tokens = (await h.client.post("/token", data=password_form("alice", PASSWORD, client_id="mobile"))).json()
    cli_ok(env, "clients", "remove", "mobile")
    cli_ok(env, "clients", "remove", "svc")
    assert_one_line_error(run_cli(*public, env=env), "a removed public client id was added again")
    assert_one_line_error(run_cli("clients", "add", "svc", env=env), "a removed client id was added again")
    await asyncio.sleep(0.6)  # the client registry may be cached for half a second
    r = await h.client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": "mobile"},
    )
    assert r.status_code in (400, 401), f"a refresh token of a removed client works again: {brief(r)}"


# --- finding 15: non-Basic Authorization ---------------------------------------------------------
SCHEMES = [
    "Bearer {token}",
    "DPoP {token}",
    'Digest username="cli", response="00"',
    "garbage",
    "Negotiate YII=",
]


async def test_non_basic_authorization_is_invalid_client(
    harness_factory: Callable[..., Any], tmp_path: Path
) -> None:
    h: AppHarness = await harness_factory(login_max_per_user=100_000, login_max_per_address=100_000)
    await h.add_user("alice", PASSWORD)
    inspector_secret = add_confidential_client(cli_env(tmp_path), "inspector")
    wrong: list[str] = []
    for scheme in SCHEMES:
        login = await h.client.post("/token", data=password_form("alice", PASSWORD))
        assert login.status_code == 200, brief(login)
        access, refresh = login.json()["access_token"], login.json()["refresh_token"]
        authorization = scheme.format(token=access)
        attempts = {
            # each form alone would succeed: a public client_id with its token, or client_secret_post
            "/token": {"grant_type": "refresh_token", "refresh_token": refresh, "client_id": "cli"},
            "/revoke": {"token": access, "client_id": "cli"},
            "/introspect": {"token": access, "client_id": "inspector", "client_secret": inspector_secret},
        }
        for path, form in attempts.items():
            r = await h.client.post(path, data=form, headers={"Authorization": authorization})
            ok = (
                r.status_code == 401
                and r.json().get("error") == "invalid_client"
                and r.headers.get("www-authenticate") == 'Basic realm="authsvc"'
                and r.headers.get("cache-control") == "no-store"
            )
            if not ok:
                wrong.append(f"{path} with Authorization: {scheme.split()[0]} …: {brief(r)}")
    assert not wrong, "\n".join(wrong)
