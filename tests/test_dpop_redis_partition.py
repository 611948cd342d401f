"""With Redis set, a DPoP proof is remembered in Redis only: an instance that cannot reach it
refuses the proof rather than remember it somewhere the others never look.

The attack (found while adding DPoP chains to the chaos soak, whose Redis stops for 3 s): two
instances share a database and a Redis; one of them cannot reach Redis (a partition, or
it met Redis' restart and the other did not). That instance used to record the proof's
``jti`` in the database instead (as the login limits fall back), while the other kept
asking Redis, which had never seen it: the same proof was accepted by both. Now the
instance that cannot record a proof in Redis answers 503 ``temporarily_unavailable``
and the proof is accepted once at most, wherever it is sent. Redis comes from
AUTHSVC_TEST_REDIS_URL: locally the test skips without it, with ``CI`` set it fails.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.dpop_support import access_token_hash, make_proof, new_key
from tests.support import LiveServer, free_port, start_server
from tests.trust_support import add_confidential_client, cli_ok, stop_server

pytestmark = pytest.mark.slow

ISSUER = "http://127.0.0.1:9135"
PASSWORD = "correct horse battery"


@pytest.fixture
def partitioned(tmp_path: Path) -> Iterator[tuple[LiveServer, LiveServer]]:
    """(cut off, connected): one database, one Redis that only the second can reach."""
    url = os.environ.get("AUTHSVC_TEST_REDIS_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("AUTHSVC_TEST_REDIS_URL is not set but CI is: the partition test must run in CI")
        pytest.skip("AUTHSVC_TEST_REDIS_URL is not set (a Redis server for the DPoP replay store)")
    unreachable = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens: connection refused
    settings = {"issuer": ISSUER, "signing_alg": "EdDSA"}
    cut_off = start_server(tmp_path, redis_url=unreachable, **settings)
    try:
        connected = start_server(tmp_path, redis_url=url, **settings)
        try:
            yield cut_off, connected
        finally:
            stop_server(connected)
    finally:
        stop_server(cut_off)


def test_a_proof_is_accepted_once_when_one_instance_cannot_reach_redis(
    partitioned: tuple[LiveServer, LiveServer],
) -> None:
    cut_off, connected = partitioned
    cli_ok(connected.env, "users", "add", "alice", "--password-stdin", input=PASSWORD + "\n")
    key = new_key("EdDSA")
    login = httpx.post(
        connected.url + "/token",
        data={"grant_type": "password", "username": "alice", "password": PASSWORD},
        headers={"DPoP": make_proof(key, "EdDSA", "POST", ISSUER + "/token")},
    )
    assert login.status_code == 200, login.text
    access = login.json()["access_token"]

    # One proof for /users/me, sent to the cut-off instance first, then to the other, then again.
    proof = make_proof(key, "EdDSA", "GET", ISSUER + "/users/me", ath=access_token_hash(access))
    headers = {"Authorization": f"DPoP {access}", "DPoP": proof}
    answers = [httpx.get(server.url + "/users/me", headers=headers) for server in (cut_off, connected)]
    answers += [httpx.get(server.url + "/users/me", headers=headers) for server in (cut_off, connected)]
    statuses = [a.status_code for a in answers]
    assert statuses.count(200) == 1, f"the proof was accepted {statuses.count(200)} times: {statuses}"
    assert statuses == [503, 200, 503, 401], statuses
    assert answers[0].json()["error"] == "temporarily_unavailable"


def test_a_token_request_with_a_proof_the_cut_off_instance_cannot_record_is_503(
    partitioned: tuple[LiveServer, LiveServer],
) -> None:
    cut_off, connected = partitioned
    secret = add_confidential_client(connected.env, "racer", "client_credentials")
    basic = "Basic " + base64.b64encode(f"racer:{secret}".encode()).decode()
    key = new_key("EdDSA")
    proof = make_proof(key, "EdDSA", "POST", ISSUER + "/token")
    body = {"grant_type": "client_credentials"}
    headers = {"Authorization": basic, "DPoP": proof}
    refused = httpx.post(cut_off.url + "/token", data=body, headers=headers)
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"] == "temporarily_unavailable"
    assert refused.headers["cache-control"] == "no-store"
    # The proof was not spent by the refusal: an instance that can record it accepts it, once.
    accepted = httpx.post(connected.url + "/token", data=body, headers=headers)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["token_type"] == "DPoP"
    again = httpx.post(connected.url + "/token", data=body, headers=headers)
    assert again.status_code == 400 and again.json()["error"] == "invalid_dpop_proof", again.text
    # Bearer requests do not touch the replay store: the cut-off instance still serves them.
    bearer = httpx.post(cut_off.url + "/token", data=body, headers={"Authorization": basic})
    assert bearer.status_code == 200, bearer.text
