"""DPoP (RFC 9449) at the token endpoint and authsvc's own resources, through the ASGI app.

spec/dpop.md and CONTRACT.md "DPoP": a valid proof at /token gives
``token_type: "DPoP"`` and ``cnf.jkt`` (the RFC 7638 thumbprint of the proof
key); a public client's refresh token is bound to that key, a confidential
client's is not (each refresh binds its new access token to the proof sent
with it); ``--require-dpop`` clients must send proofs; ``dpop_jkt`` at
/authorize and a proof at /par bind the code; /users/me and /userinfo take
``Authorization: DPoP`` with a proof carrying ``ath`` and refuse a bound token
sent as Bearer; introspection shows ``cnf``; server nonces (``use_dpop_nonce``,
``DPoP-Nonce``) are valid across instances. The hand-built refusals are in
test_dpop_corpus.py, the races in test_dpop_race.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.authorize_support import add_browser_client, authorize_params, callback, form_of, pkce
from tests.dpop_support import (
    ALGS,
    TOKEN_URL,
    Key,
    access_token_hash,
    challenge_params,
    dpop_headers,
    make_proof,
    new_key,
    thumbprint,
)
from tests.support import ISSUER, AppHarness, assert_error, claims_of
from tests.test_client_auth import add_client, basic
from tests.trust_support import cli_env, cli_ok, client_secret

Factory = Callable[..., Any]

ME_URL = ISSUER + "/users/me"
USERINFO_URL = ISSUER + "/userinfo"
PAR_URL = ISSUER + "/par"


# --- helpers -------------------------------------------------------------------------------------
def proof(
    h: AppHarness, key: Key, method: str = "POST", url: str = TOKEN_URL, alg: str = "ES256", **kw: Any
) -> str:
    return make_proof(key, alg, method, url, now=h.clock.now(), **kw)


async def token(
    h: AppHarness, form: dict[str, str], key: Key | None = None, alg: str = "ES256", **headers: str
) -> httpx.Response:
    if key is not None:
        headers["DPoP"] = proof(h, key, alg=alg)
    return await h.client.post("/token", data=form, headers=headers)


def password(**extra: str) -> dict[str, str]:
    return {"grant_type": "password", "username": "alice", "password": "correct horse", **extra}


def refresh(refresh_token: str, **extra: str) -> dict[str, str]:
    return {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}


def assert_bound(response: httpx.Response, key: Key) -> dict[str, Any]:
    """A DPoP token response (RFC 9449 §5) whose access token is bound to ``key``."""
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["token_type"] == "DPoP", body["token_type"]
    assert claims_of(body["access_token"]).get("cnf") == {"jkt": thumbprint(key)}
    assert response.headers["cache-control"] == "no-store"
    return body


def assert_bearer(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["token_type"] == "Bearer"
    assert "cnf" not in claims_of(body["access_token"])
    return body


async def me(
    h: AppHarness, access_token: str, key: Key | None, url: str = ME_URL, **kw: Any
) -> httpx.Response:
    path = url.removeprefix(ISSUER)
    dpop = proof(h, key, "GET", url, ath=access_token_hash(access_token), **kw) if key is not None else None
    return await h.client.get(path, headers=dpop_headers(access_token, dpop))


def assert_dpop_refused(response: httpx.Response, error: str = "invalid_dpop_proof") -> dict[str, str]:
    """A resource's refusal (spec/dpop.md): 401 and a DPoP challenge naming the error and the algs."""
    assert response.status_code == 401, response.text
    params = challenge_params(response, "DPoP")
    assert params is not None, response.headers.get_list("www-authenticate")
    assert params.get("error") == error, params
    assert params.get("algs", "").split() == list(ALGS), params
    return params


@pytest.fixture
async def h(harness: AppHarness) -> AppHarness:
    await harness.add_user(scopes="read write")
    return harness


# --- the token endpoint --------------------------------------------------------------------------
@pytest.mark.parametrize("alg", ALGS)
async def test_client_credentials_with_a_proof_of_each_alg_is_bound_to_its_key(
    h: AppHarness, alg: str
) -> None:
    secret = await h.add_service_client("svc", scopes=frozenset({"read"}))
    key = new_key(alg)
    body = assert_bound(
        await token(h, {"grant_type": "client_credentials"}, key, alg, **basic("svc", secret)), key
    )
    assert body["expires_in"] > 0 and "refresh_token" not in body
    # The same client without a proof still gets a Bearer token: DPoP is the client's choice.
    assert_bearer(await token(h, {"grant_type": "client_credentials"}, **basic("svc", secret)))


async def test_password_grant_binds_the_public_clients_access_and_refresh_tokens(h: AppHarness) -> None:
    key = new_key("EdDSA")
    body = assert_bound(await token(h, password(), key, "EdDSA"), key)
    # spec/dpop.md: public clients' refresh tokens carry the same cnf.
    assert claims_of(body["refresh_token"]).get("cnf") == {"jkt": thumbprint(key)}


async def test_a_public_clients_refresh_needs_a_proof_by_the_same_key(h: AppHarness) -> None:
    key, other = new_key("ES256"), new_key("ES256")
    refused = {}
    for name, with_key in (
        ("no proof", None),
        ("another key", other),
        ("another alg's key", new_key("RS256")),
    ):
        first = assert_bound(await token(h, password(), key), key)
        alg = "RS256" if name == "another alg's key" else "ES256"
        refused[name] = await token(h, refresh(first["refresh_token"]), with_key, alg)
    for name, response in refused.items():
        assert response.status_code == 400, (name, response.text)
        assert response.json()["error"] == "invalid_grant", (name, response.text)
    first = assert_bound(await token(h, password(), key), key)
    second = assert_bound(await token(h, refresh(first["refresh_token"]), key), key)
    # Still bound after the refresh: the successor refresh token is the same key's only.
    assert claims_of(second["refresh_token"]).get("cnf") == {"jkt": thumbprint(key)}
    stolen = await token(h, refresh(second["refresh_token"]), other)
    assert_error(stolen, 400, "invalid_grant")


async def test_a_confidential_clients_refresh_binds_the_new_access_token_to_the_new_key(
    h: AppHarness,
) -> None:
    secret = await add_client(h, "conf", grants=("password", "refresh_token"))
    auth = basic("conf", secret)
    first_key, second_key = new_key("ES256"), new_key("PS256")
    first = assert_bound(await token(h, password(), first_key, **auth), first_key)
    assert "cnf" not in claims_of(first["refresh_token"]), (
        "a confidential client's refresh token is not bound"
    )
    second = assert_bound(
        await token(h, refresh(first["refresh_token"]), second_key, "PS256", **auth), second_key
    )
    # Without a proof the confidential client may still refresh; the new access token is a Bearer one.
    assert_bearer(await token(h, refresh(second["refresh_token"]), **auth))


async def test_require_dpop_client_without_a_proof_is_invalid_dpop_proof(
    h: AppHarness, tmp_path: Path
) -> None:
    out = cli_ok(
        cli_env(tmp_path), "clients", "add", "strict", "--grant", "client_credentials", "--require-dpop"
    )
    auth = basic("strict", client_secret(out))
    assert_error(await token(h, {"grant_type": "client_credentials"}, **auth), 400, "invalid_dpop_proof")
    key = new_key("ES256")
    assert_bound(await token(h, {"grant_type": "client_credentials"}, key, **auth), key)


# --- the authorization code flow -----------------------------------------------------------------
async def _code(h: AppHarness, client_id: str, challenge: str, **extra: str) -> str:
    """Sign in (or reuse the browser session) and return the code."""
    page = await h.client.get("/authorize", params=authorize_params(client_id, challenge, **extra))
    if page.status_code == 200:
        page = await h.client.post(
            "/authorize", data={**form_of(page).hidden, "username": "alice", "password": "correct horse"}
        )
    return callback(page)["code"]


def _redeem_form(client_id: str, code: str, verifier: str) -> dict[str, str]:
    from tests.authorize_support import REDIRECT

    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
        "client_id": client_id,
    }


@pytest.fixture
async def browser(h: AppHarness) -> AppHarness:
    await add_browser_client(h, "spa", first_party=True)
    return h


async def test_dpop_jkt_at_authorize_binds_the_code_to_that_key(browser: AppHarness) -> None:
    h = browser
    key = new_key("ES256")
    jkt = thumbprint(key)
    verifier, challenge = pkce()
    code = await _code(h, "spa", challenge, dpop_jkt=jkt, scope="openid profile read")
    body = assert_bound(await token(h, _redeem_form("spa", code, verifier), key), key)
    assert claims_of(body["refresh_token"]).get("cnf") == {"jkt": jkt}
    # /userinfo with the bound token and a proof by its key.
    info = await me(h, body["access_token"], key, USERINFO_URL)
    assert info.status_code == 200, info.text
    assert info.json()["preferred_username"] == "alice"
    for name, with_key in (("another key", new_key("ES256")), ("no proof", None)):
        verifier, challenge = pkce()
        code = await _code(h, "spa", challenge, dpop_jkt=jkt)
        answer = await token(h, _redeem_form("spa", code, verifier), with_key)
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant", (name, answer.text)


async def test_a_proof_at_par_binds_the_code_to_its_key(browser: AppHarness) -> None:
    h = browser
    key = new_key("EdDSA")
    for name, redeem_key, ok in (("same key", key, True), ("another key", new_key("EdDSA"), False)):
        verifier, challenge = pkce()
        pushed = await h.client.post(
            "/par",
            data=authorize_params("spa", challenge),
            headers={"DPoP": proof(h, key, url=PAR_URL, alg="EdDSA")},
        )
        assert pushed.status_code == 201, (name, pushed.text)
        code = await _code_from_request_uri(h, "spa", pushed.json()["request_uri"])
        answer = await token(h, _redeem_form("spa", code, verifier), redeem_key, "EdDSA")
        if ok:
            assert_bound(answer, key)
        else:
            assert_error(answer, 400, "invalid_grant")
    # A bad proof at /par is refused there (400 invalid_dpop_proof), before any request_uri exists.
    stale = proof(h, key, url=PAR_URL, alg="EdDSA", iat=h.clock.now() - 3600)
    refused = await h.client.post("/par", data=authorize_params("spa", pkce()[1]), headers={"DPoP": stale})
    assert_error(refused, 400, "invalid_dpop_proof")


async def _code_from_request_uri(h: AppHarness, client_id: str, request_uri: str) -> str:
    page = await h.client.get("/authorize", params={"client_id": client_id, "request_uri": request_uri})
    if page.status_code == 200:
        page = await h.client.post(
            "/authorize", data={**form_of(page).hidden, "username": "alice", "password": "correct horse"}
        )
    return callback(page)["code"]


# --- authsvc's own resources ---------------------------------------------------------------------
async def test_users_me_with_a_dpop_token_and_a_proof(h: AppHarness) -> None:
    key = new_key("RS256")
    body = assert_bound(await token(h, password(), key, "RS256"), key)
    answer = await me(h, body["access_token"], key, alg="RS256")
    assert answer.status_code == 200, answer.text
    assert answer.json()["username"] == "alice"
    assert answer.headers["cache-control"] == "no-store"
    # The same token with a fresh proof again, and a query string (not part of htu): still fine.
    dpop = proof(h, key, "GET", ME_URL, alg="RS256", ath=access_token_hash(body["access_token"]))
    again = await h.client.get("/users/me?x=1", headers=dpop_headers(body["access_token"], dpop))
    assert again.status_code == 200, again.text


async def test_a_bound_token_sent_as_bearer_is_refused(h: AppHarness) -> None:
    key = new_key("ES256")
    access = assert_bound(await token(h, password(), key), key)["access_token"]
    for headers in (
        {"Authorization": "Bearer " + access},
        {
            "Authorization": "Bearer " + access,
            "DPoP": proof(h, key, "GET", ME_URL, ath=access_token_hash(access)),
        },
    ):
        answer = await h.client.get("/users/me", headers=headers)
        assert answer.status_code == 401, answer.text
        params = challenge_params(answer, "Bearer")
        assert params is not None and params.get("error") == "invalid_token", answer.headers.get_list(
            "www-authenticate"
        )


async def test_an_unbound_token_sent_as_dpop_is_refused(h: AppHarness) -> None:
    key = new_key("ES256")
    access = assert_bearer(await token(h, password()))["access_token"]
    answer = await me(h, access, key)
    assert answer.status_code == 401, answer.text
    errors = {
        (params or {}).get("error")
        for params in (challenge_params(answer, "DPoP"), challenge_params(answer, "Bearer"))
    }
    assert errors & {"invalid_token", "invalid_dpop_proof"}, answer.headers.get_list("www-authenticate")


async def test_resource_refusals_carry_a_dpop_challenge_with_the_algs(h: AppHarness) -> None:
    key = new_key("ES256")
    access = assert_bound(await token(h, password(), key), key)["access_token"]
    ath = access_token_hash(access)
    cases = {
        "wrong ath": proof(h, key, "GET", ME_URL, ath=access_token_hash(access + "x")),
        "no ath": proof(h, key, "GET", ME_URL),
        "another key": proof(h, new_key("ES256"), "GET", ME_URL, ath=ath),
        "wrong htm": proof(h, key, "POST", ME_URL, ath=ath),
        "wrong htu": proof(h, key, "GET", ISSUER + "/userinfo", ath=ath),
        "stale": proof(h, key, "GET", ME_URL, ath=ath, iat=h.clock.now() - 3600),
    }
    for name, dpop in cases.items():
        answer = await h.client.get("/users/me", headers=dpop_headers(access, dpop))
        assert answer.status_code == 401, (name, answer.text)
        params = challenge_params(answer, "DPoP")
        assert params is not None, (name, answer.headers.get_list("www-authenticate"))
        # A proof by another key fails the binding: RFC 9449 §7.1 lets that be invalid_token.
        expected = (
            {"invalid_dpop_proof", "invalid_token"} if name == "another key" else {"invalid_dpop_proof"}
        )
        assert params.get("error") in expected, (name, params)
        assert params.get("algs", "").split() == list(ALGS), (name, params)
    # DPoP scheme with no proof at all.
    missing = await h.client.get("/users/me", headers=dpop_headers(access, None))
    assert missing.status_code == 401, missing.text
    assert challenge_params(missing, "DPoP") is not None, missing.headers.get_list("www-authenticate")


async def test_introspection_shows_cnf_and_token_type_dpop(h: AppHarness) -> None:
    introspector = await h.add_service_client("rs")
    key = new_key("ES256")
    bound = assert_bound(await token(h, password(), key), key)["access_token"]
    plain = assert_bearer(await token(h, password()))["access_token"]
    answers = {}
    for name, access in (("bound", bound), ("plain", plain)):
        response = await h.client.post(
            "/introspect", data={"token": access}, headers=basic("rs", introspector)
        )
        assert response.status_code == 200, response.text
        answers[name] = response.json()
    assert answers["bound"]["active"] is True
    assert answers["bound"]["token_type"] == "DPoP"
    assert answers["bound"]["cnf"] == {"jkt": thumbprint(key)}
    assert answers["plain"]["token_type"] == "Bearer" and "cnf" not in answers["plain"]


async def test_metadata_lists_the_dpop_algs(h: AppHarness) -> None:
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        metadata = (await h.client.get(path)).json()
        assert metadata.get("dpop_signing_alg_values_supported") == list(ALGS), (path, metadata)


# --- server nonces -------------------------------------------------------------------------------
async def _nonce_challenge(h: AppHarness, form: dict[str, str], key: Key, **headers: str) -> str:
    """The DPoP-Nonce of a /token answer to a proof without a nonce (400 use_dpop_nonce)."""
    first = await token(h, form, key, **headers)
    assert_error(first, 400, "use_dpop_nonce")
    nonce = first.headers.get("dpop-nonce")
    assert nonce, first.headers
    return nonce


async def test_nonces_at_the_token_endpoint(harness_factory: Factory) -> None:
    h: AppHarness = await harness_factory(dpop_nonce=True)
    secret = await h.add_service_client("svc")
    auth = basic("svc", secret)
    form = {"grant_type": "client_credentials"}
    key = new_key("ES256")
    nonce = await _nonce_challenge(h, form, key, **auth)
    ok = await h.client.post("/token", data=form, headers={**auth, "DPoP": proof(h, key, nonce=nonce)})
    assert_bound(ok, key)
    garbage = await h.client.post(
        "/token", data=form, headers={**auth, "DPoP": proof(h, key, nonce="x" + nonce)}
    )
    assert_error(garbage, 400, "use_dpop_nonce")
    assert garbage.headers.get("dpop-nonce")
    # Nonces rotate: one from three minutes ago (past the current and the previous window) is stale.
    h.clock.advance(180)
    stale = await h.client.post("/token", data=form, headers={**auth, "DPoP": proof(h, key, nonce=nonce)})
    assert_error(stale, 400, "use_dpop_nonce")
    fresh = stale.headers.get("dpop-nonce")
    assert fresh and fresh != nonce
    assert_bound(
        await h.client.post("/token", data=form, headers={**auth, "DPoP": proof(h, key, nonce=fresh)}), key
    )


async def test_nonces_at_the_resource(harness_factory: Factory) -> None:
    h: AppHarness = await harness_factory(dpop_nonce=True)
    await h.add_user()
    key = new_key("ES256")
    nonce = await _nonce_challenge(h, password(), key)
    access = assert_bound(
        await h.client.post("/token", data=password(), headers={"DPoP": proof(h, key, nonce=nonce)}), key
    )["access_token"]
    h.clock.advance(180)  # the token endpoint's nonce is stale by now
    answer = await me(h, access, key, nonce=nonce)
    assert_dpop_refused(answer, "use_dpop_nonce")
    fresh = answer.headers.get("dpop-nonce")
    assert fresh, answer.headers
    missing = await me(h, access, key)
    assert_dpop_refused(missing, "use_dpop_nonce")
    ok = await me(h, access, key, nonce=fresh)
    assert ok.status_code == 200, ok.text


async def test_a_nonce_from_one_instance_is_accepted_by_another(harness_factory: Factory) -> None:
    first: AppHarness = await harness_factory(dpop_nonce=True)
    second: AppHarness = await harness_factory(dpop_nonce=True)  # the same database and keys
    secret = await first.add_service_client("svc")
    auth = basic("svc", secret)
    form = {"grant_type": "client_credentials"}
    key = new_key("ES256")
    nonce = await _nonce_challenge(first, form, key, **auth)
    answer = await second.client.post(
        "/token", data=form, headers={**auth, "DPoP": proof(second, key, nonce=nonce)}
    )
    assert_bound(answer, key)
    # And the other way round, a window later (the previous window's nonce is still good).
    nonce = await _nonce_challenge(second, form, key, **auth)
    first.clock.advance(60)
    answer = await first.client.post(
        "/token", data=form, headers={**auth, "DPoP": proof(first, key, nonce=nonce)}
    )
    assert_bound(answer, key)


async def test_every_answer_to_a_dpop_request_carries_a_nonce(harness_factory: Factory) -> None:
    """spec/dpop.md: with AUTHSVC_DPOP_NONCE=true every answer to a DPoP request carries DPoP-Nonce
    (RFC 9449 §8.2: the server may hand out the next nonce on any answer)."""
    h: AppHarness = await harness_factory(dpop_nonce=True)
    await h.add_user()
    await add_browser_client(h, "spa", first_party=True)
    key = new_key("ES256")
    nonce = await _nonce_challenge(h, password(), key)
    granted = await h.client.post("/token", data=password(), headers={"DPoP": proof(h, key, nonce=nonce)})
    access = assert_bound(granted, key)["access_token"]
    answers = {
        "/token 200": granted,
        "/token 400 invalid_dpop_proof": await h.client.post(
            "/token", data=password(), headers={"DPoP": proof(h, key, "GET", nonce=nonce)}
        ),
        "/token 400 invalid_grant": await h.client.post(
            "/token", data=password(password="wrong password"), headers={"DPoP": proof(h, key, nonce=nonce)}
        ),
        "/users/me 200": await me(h, access, key, nonce=nonce),
        "/users/me 401 invalid_dpop_proof": await me(
            h, access, key, nonce=nonce, extra_claims={"htm": "POST"}
        ),
        "/par 201": await h.client.post(
            "/par",
            data=authorize_params("spa", pkce()[1]),
            headers={"DPoP": proof(h, key, url=PAR_URL, nonce=nonce)},
        ),
    }
    statuses = {name: answer.status_code for name, answer in answers.items()}
    assert statuses == {name: int(name.split()[1]) for name in answers}, statuses
    missing = [name for name, answer in answers.items() if not answer.headers.get("dpop-nonce")]
    assert not missing, f"answers without DPoP-Nonce: {missing}"
