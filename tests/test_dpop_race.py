"""The same DPoP proof sent to several live instances at once is accepted at most once.

spec/dpop.md: a (jkt, jti) pair is accepted once while its iat can be, across
processes and instances (the database, or Redis when AUTHSVC_REDIS_URL is
set). Deployments: one server with ``--workers 2`` on SQLite, two servers on
one PostgreSQL database, the same with Redis. Each round sends one fresh
proof to every instance at once, at /token and at /users/me (a proof for a
bound access token); exactly one request may win, every other one gets the
proof refusal. PostgreSQL and Redis come from AUTHSVC_TEST_POSTGRES_URL and
AUTHSVC_TEST_REDIS_URL: locally the test skips without them, with ``CI`` set it
fails instead.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.dpop_support import access_token_hash, challenge_params, make_proof, new_key, thumbprint
from tests.support import LiveServer, claims_of, fresh_postgres_database
from tests.trust_support import (
    add_confidential_client,
    brief,
    cli_ok,
    live_servers,
    pg_rows,
    redis_url,
    sqlite_rows,
)

pytestmark = pytest.mark.slow

ISSUER = "http://127.0.0.1:9134"  # every instance's issuer: proofs name it, not the port they go to
ROUNDS = 5
PER_INSTANCE = 3  # concurrent copies of the proof per instance
PASSWORD = "correct horse battery"


def _service(name: str) -> None:
    """Locally a missing service skips; in CI (``CI`` set) it is a failure."""
    variable = f"AUTHSVC_TEST_{name.upper()}_URL"
    if os.environ.get("CI") and not os.environ.get(variable):
        pytest.fail(f"{variable} is not set but CI is: the DPoP race tests must run in CI")


@pytest.fixture(params=["workers-2-sqlite", "two-instances-postgresql", "two-instances-postgresql-redis"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[LiveServer]]:
    settings = {"issuer": ISSUER, "signing_alg": "EdDSA"}
    if request.param == "workers-2-sqlite":
        with live_servers(tmp_path, extra_args=("--workers", "2"), **settings) as servers:
            yield servers
        return
    _service("postgres")
    if request.param.endswith("-redis"):
        _service("redis")
        settings["redis_url"] = redis_url()
    url, drop = fresh_postgres_database()
    try:
        with live_servers(tmp_path, 2, database_url=url, **settings) as servers:
            yield servers
    finally:
        drop()


@dataclass
class Shot:
    base: str
    method: str
    path: str
    headers: dict[str, str]
    data: dict[str, str] = field(default_factory=dict)


async def _at_once(shots: list[Shot]) -> list[httpx.Response]:
    """Every request on its own open connection, released together (as trust_support.burst)."""
    gate = asyncio.Event()
    ready = 0

    async def one(shot: Shot) -> httpx.Response:
        nonlocal ready
        async with httpx.AsyncClient(base_url=shot.base, timeout=60) as client:
            await client.get("/healthz")
            ready += 1
            if ready == len(shots):
                gate.set()
            await gate.wait()
            if shot.method == "POST":
                return await client.post(shot.path, data=shot.data, headers=shot.headers)
            return await client.get(shot.path, headers=shot.headers)

    return list(await asyncio.gather(*(one(shot) for shot in shots)))


def _instances(servers: list[LiveServer]) -> list[str]:
    """Base URLs to aim at: each server (a ``--workers 2`` server: its one port, twice as often)."""
    urls = [server.url for server in servers]
    return urls * (PER_INSTANCE if len(urls) > 1 else 2 * PER_INSTANCE)


async def test_one_proof_sent_to_every_instance_at_once_is_accepted_at_most_once(
    deployment: list[LiveServer],
) -> None:
    servers = deployment
    env = servers[0].env
    secret = add_confidential_client(env, "racer", "client_credentials")
    basic = "Basic " + base64.b64encode(f"racer:{secret}".encode()).decode()
    cli_ok(env, "users", "add", "alice", "--password-stdin", input=PASSWORD + "\n")
    key = new_key("ES256")
    async with httpx.AsyncClient(timeout=30) as client:
        login = await client.post(
            servers[0].url + "/token",
            data={"grant_type": "password", "username": "alice", "password": PASSWORD},
            headers={"DPoP": make_proof(key, "ES256", "POST", ISSUER + "/token")},
        )
    assert login.status_code == 200, login.text
    access = login.json()["access_token"]
    assert claims_of(access).get("cnf") == {"jkt": thumbprint(key)}

    problems: list[str] = []
    for round_ in range(ROUNDS):
        proof = make_proof(key, "ES256", "POST", ISSUER + "/token", iat=time.time())
        shots = [
            Shot(
                base,
                "POST",
                "/token",
                {"Authorization": basic, "DPoP": proof},
                {"grant_type": "client_credentials"},
            )
            for base in _instances(servers)
        ]
        answers = await _at_once(shots)
        problems += _judge(f"/token round {round_}", answers, resource=False)

        proof = make_proof(
            key, "ES256", "GET", ISSUER + "/users/me", iat=time.time(), ath=access_token_hash(access)
        )
        shots = [
            Shot(base, "GET", "/users/me", {"Authorization": "DPoP " + access, "DPoP": proof})
            for base in _instances(servers)
        ]
        answers = await _at_once(shots)
        problems += _judge(f"/users/me round {round_}", answers, resource=True)
    assert not problems, "\n".join(problems)

    # spec/dpop.md: the proof ids live in client_assertions under "dpop:<jkt>", or in Redis when set.
    rows = await _remembered_proofs(env["AUTHSVC_DATABASE_URL"], "dpop:" + thumbprint(key))
    if "AUTHSVC_REDIS_URL" in env:
        assert rows == 0, f"{rows} proof ids in the database although Redis is set"
    else:
        assert rows >= 1 + 2 * ROUNDS, f"only {rows} proof ids in the database"


async def _remembered_proofs(database_url: str, owner: str) -> int:
    sql = "SELECT count(*) FROM client_assertions WHERE client_id = "
    if database_url.startswith("sqlite"):
        path = Path(database_url.split("///", 1)[1])
        return int(sqlite_rows(path, sql + "?", (owner,))[0][0])
    return int((await pg_rows(database_url, sql + "$1", owner))[0][0])


def _judge(what: str, answers: list[httpx.Response], *, resource: bool) -> list[str]:
    """At most one success; every other answer the proof refusal (400 at /token, 401 + DPoP challenge)."""
    problems = []
    accepted = [a for a in answers if a.status_code == 200]
    if len(accepted) > 1:
        problems.append(f"{what}: one proof accepted {len(accepted)} times of {len(answers)}")
    if not accepted:  # not a replay failure, but then the test shows nothing: say so
        problems.append(f"{what}: the proof was accepted by no instance: {[brief(a) for a in answers]}")
    for answer in answers:
        if answer.status_code == 200:
            continue
        if resource:
            params = challenge_params(answer, "DPoP") or {}
            if answer.status_code != 401 or params.get("error") != "invalid_dpop_proof":
                problems.append(f"{what}: {answer.status_code} {answer.headers.get_list('www-authenticate')}")
        elif answer.status_code != 400 or brief(answer) != "400 invalid_dpop_proof":
            problems.append(f"{what}: {brief(answer)}")
    return problems
