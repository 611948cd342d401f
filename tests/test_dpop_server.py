"""DPoP at authsvc's own endpoints, through the ASGI app: bound tokens from /token, a public
client's refresh bound to its key, the resources' two schemes, nonces, and the metadata."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest
from joserfc import jws
from joserfc.jwk import ECKey, OKPKey

from authsvc.dpop import access_token_hash
from authsvc.jose import registry_for
from tests.support import ISSUER, AppHarness, claims_of


def proof(key: Any, alg: str, method: str, path: str, clock_now: float, **claims: Any) -> str:
    header = {"typ": "dpop+jwt", "alg": alg, "jwk": key.as_dict(private=False)}
    body = {
        "jti": secrets.token_urlsafe(12),
        "htm": method,
        "htu": ISSUER + path,
        "iat": int(clock_now),
        **claims,
    }
    return jws.serialize_compact(header, json.dumps(body).encode(), key, registry=registry_for(alg))


@pytest.fixture
async def alice(harness: AppHarness) -> AppHarness:
    await harness.add_user()
    return harness


async def test_password_grant_with_a_proof_binds_both_tokens(alice: AppHarness) -> None:
    key = ECKey.generate_key("P-256")
    now = alice.clock.now()
    answer = (
        await alice.login(headers=None)
        if False
        else await alice.client.post(
            "/token",
            data={"grant_type": "password", "username": "alice", "password": "correct horse"},
            headers={"DPoP": proof(key, "ES256", "POST", "/token", now)},
        )
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "DPoP"
    assert claims_of(body["access_token"])["cnf"] == {"jkt": key.thumbprint()}
    assert claims_of(body["refresh_token"])["cnf"] == {"jkt": key.thumbprint()}
    # The refresh needs a proof by the same key.
    assert (await alice.refresh(body["refresh_token"])).json()["error"] == "invalid_grant"
    other = ECKey.generate_key("P-256")
    refused = await alice.client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        headers={"DPoP": proof(other, "ES256", "POST", "/token", now)},
    )
    assert refused.json()["error"] == "invalid_grant"
    renewed = await alice.client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        headers={"DPoP": proof(key, "ES256", "POST", "/token", now)},
    )
    assert renewed.status_code == 200, renewed.text
    assert claims_of(renewed.json()["refresh_token"])["cnf"] == {"jkt": key.thumbprint()}


async def test_resources_take_the_dpop_scheme_with_a_proof(alice: AppHarness) -> None:
    key = OKPKey.generate_key("Ed25519")
    now = alice.clock.now()
    tokens = (
        await alice.client.post(
            "/token",
            data={"grant_type": "password", "username": "alice", "password": "correct horse"},
            headers={"DPoP": proof(key, "Ed25519", "POST", "/token", now)},
        )
    ).json()
    access = tokens["access_token"]
    good = proof(key, "EdDSA", "GET", "/users/me", now, ath=access_token_hash(access))
    me = await alice.client.get("/users/me", headers={"Authorization": "DPoP " + access, "DPoP": good})
    assert me.status_code == 200, me.text
    replay = await alice.client.get("/users/me", headers={"Authorization": "DPoP " + access, "DPoP": good})
    assert replay.status_code == 401
    assert replay.headers["www-authenticate"].startswith('DPoP error="invalid_dpop_proof"')
    assert 'algs="' in replay.headers["www-authenticate"]
    as_bearer = await alice.me(access)
    assert as_bearer.status_code == 401 and 'error="invalid_token"' in as_bearer.headers["www-authenticate"]
    no_ath = proof(key, "EdDSA", "GET", "/users/me", now)
    answer = await alice.client.get("/users/me", headers={"Authorization": "DPoP " + access, "DPoP": no_ath})
    assert answer.status_code == 401
    unbound = (await alice.login()).json()["access_token"]
    answer = await alice.client.get(
        "/users/me",
        headers={
            "Authorization": "DPoP " + unbound,
            "DPoP": proof(key, "EdDSA", "GET", "/users/me", now, ath=access_token_hash(unbound)),
        },
    )
    assert answer.status_code == 401 and 'DPoP error="invalid_token"' in answer.headers["www-authenticate"]


async def test_a_replayed_or_stale_proof_is_refused_at_the_token_endpoint(alice: AppHarness) -> None:
    key = ECKey.generate_key("P-256")
    now = alice.clock.now()
    form = {"grant_type": "password", "username": "alice", "password": "correct horse"}
    once = proof(key, "ES256", "POST", "/token", now)
    assert (await alice.client.post("/token", data=form, headers={"DPoP": once})).status_code == 200
    again = await alice.client.post("/token", data=form, headers={"DPoP": once})
    assert again.status_code == 400 and again.json()["error"] == "invalid_dpop_proof"
    stale = proof(key, "ES256", "POST", "/token", now - 3600)
    assert (await alice.client.post("/token", data=form, headers={"DPoP": stale})).json()[
        "error"
    ] == "invalid_dpop_proof"


async def test_nonces_when_demanded(harness_factory: Any) -> None:
    harness: AppHarness = await harness_factory(dpop_nonce=True)
    await harness.add_user()
    key = ECKey.generate_key("P-256")
    now = harness.clock.now()
    form = {"grant_type": "password", "username": "alice", "password": "correct horse"}
    first = await harness.client.post(
        "/token", data=form, headers={"DPoP": proof(key, "ES256", "POST", "/token", now)}
    )
    assert first.status_code == 400 and first.json()["error"] == "use_dpop_nonce"
    nonce = first.headers["dpop-nonce"]
    retry = await harness.client.post(
        "/token", data=form, headers={"DPoP": proof(key, "ES256", "POST", "/token", now, nonce=nonce)}
    )
    assert retry.status_code == 200, retry.text
    assert retry.headers["dpop-nonce"]


async def test_metadata_lists_dpop_algs_including_ed25519(harness: AppHarness) -> None:
    doc = (await harness.client.get("/.well-known/openid-configuration")).json()
    assert {"ES256", "EdDSA", "Ed25519", "RS256", "PS256"} <= set(doc["dpop_signing_alg_values_supported"])
    assert "Ed25519" in doc["token_endpoint_auth_signing_alg_values_supported"]


async def test_a_replayed_proof_is_refused_with_redis_and_none_is_taken_when_redis_is_gone(
    harness_factory: Any,
) -> None:
    """With Redis set, proofs are remembered there alone: without it, a proof is refused (503),
    never remembered where other instances would not look (tests/test_dpop_redis_partition.py)."""
    from tests.trust_support import redis_url

    harness: AppHarness = await harness_factory(redis_url=redis_url())
    await harness.add_user()
    key = ECKey.generate_key("P-256")
    form = {"grant_type": "password", "username": "alice", "password": "correct horse"}
    once = proof(key, "ES256", "POST", "/token", harness.clock.now())
    assert (await harness.client.post("/token", data=form, headers={"DPoP": once})).status_code == 200
    again = await harness.client.post("/token", data=form, headers={"DPoP": once})
    assert again.json()["error"] == "invalid_dpop_proof"
    down: AppHarness = await harness_factory(redis_url="redis://127.0.0.1:1/0")  # nothing listens there
    await down.add_user("bob")
    form = {"grant_type": "password", "username": "bob", "password": "correct horse"}
    once = proof(key, "ES256", "POST", "/token", down.clock.now())
    for _ in range(2):
        refused = await down.client.post("/token", data=form, headers={"DPoP": once})
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"] == "temporarily_unavailable"
    assert (await down.client.post("/token", data=form)).status_code == 200  # no proof: no Redis needed


async def test_refused_proofs_are_counted_by_reason_and_audited(
    alice: AppHarness, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    caplog.set_level(logging.WARNING, logger="authsvc.audit")
    key = ECKey.generate_key("P-256")
    form = {"grant_type": "password", "username": "alice", "password": "correct horse"}
    wrong_method = proof(key, "ES256", "GET", "/token", alice.clock.now())
    assert (await alice.client.post("/token", data=form, headers={"DPoP": wrong_method})).status_code == 400
    page = alice.app.metrics.render().decode()
    assert 'authsvc_dpop_proofs_refused_total{reason="htm does not match the request"} 1.0' in page
    assert any("DPoP proof refused" in record.getMessage() for record in caplog.records)


async def test_a_proof_fresh_when_its_request_arrived_is_not_refused_for_the_servers_own_delay(
    alice: AppHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chaos soak's DPoP chains met it: during a database restart a refresh waited 3 s
    inside the server (client authentication reads the database), on an instance whose clock
    ran 2 s ahead, and its proof was then judged 5 s old: 400 ``invalid_dpop_proof``, the
    client's session lost for the server's own delay. A proof's ``iat`` is judged at the
    time its request arrived; ``jti`` is still remembered until ``iat`` + skew."""
    skew = alice.settings.clock_skew
    authenticate = alice.services.client_auth.authenticate

    async def slow_database(*args: Any, **kwargs: Any) -> Any:
        alice.clock.advance(skew + 2)  # the request waits past the proof's window
        return await authenticate(*args, **kwargs)

    monkeypatch.setattr(alice.services.client_auth, "authenticate", slow_database)
    key = OKPKey.generate_key("Ed25519")
    form = {"grant_type": "password", "username": "alice", "password": "correct horse"}
    sent_at = alice.clock.now()
    fresh = proof(key, "EdDSA", "POST", "/token", sent_at)
    answer = await alice.client.post("/token", data=form, headers={"DPoP": fresh})
    assert answer.status_code == 200, answer.text
    assert answer.json()["token_type"] == "DPoP"
    monkeypatch.undo()
    # Stale on arrival is still stale.
    stale = proof(key, "EdDSA", "POST", "/token", alice.clock.now() - skew - 2)
    refused = await alice.client.post("/token", data=form, headers={"DPoP": stale})
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_dpop_proof", refused.text
    # The accepted proof is spent: sent again at a time its iat would pass, it is a replay.
    alice.clock.set(sent_at)
    again = await alice.client.post("/token", data=form, headers={"DPoP": fresh})
    assert again.status_code == 400 and again.json()["error"] == "invalid_dpop_proof", again.text
    page = alice.app.metrics.render().decode()
    assert 'authsvc_dpop_proofs_refused_total{reason="jti used before"} 1.0' in page
