"""The authorization code flow through the ASGI app: sign in on the hosted page, consent,
redeem the code with PKCE, SSO for a second client, and the single use of codes."""

from __future__ import annotations

from tests.authorize_support import REDIRECT, add_browser_client, authorize_params, callback, form_of, pkce
from tests.support import ISSUER, AppHarness, claims_of


async def test_sign_in_consent_redeem_and_sso(harness: AppHarness) -> None:
    await harness.add_user()
    await add_browser_client(harness, "spa", first_party=True)
    await add_browser_client(harness, "third", first_party=False)
    verifier, challenge = pkce()
    page = await harness.client.get("/authorize", params=authorize_params("spa", challenge))
    assert page.status_code == 200
    assert 'name="username"' in page.text
    form = form_of(page)
    assert form.action == "/authorize"
    wrong = await harness.client.post(
        "/authorize", data={**form.hidden, "username": "alice", "password": "wrong password"}
    )
    assert wrong.status_code == 200
    assert "incorrect" in wrong.text
    form = form_of(wrong)
    signed_in = await harness.client.post(
        "/authorize", data={**form.hidden, "username": "alice", "password": "correct horse"}
    )
    got = callback(signed_in)
    assert got["state"] == "st-1"
    assert got["iss"] == ISSUER
    token = await harness.client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": got["code"],
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            "client_id": "spa",
        },
    )
    assert token.status_code == 200, token.text
    body = token.json()
    assert set(body) >= {"access_token", "refresh_token", "id_token"}
    id_claims = claims_of(body["id_token"])
    assert id_claims["aud"] == "spa"
    assert id_claims["nonce"] == "n-1"
    assert id_claims["sid"] == claims_of(body["access_token"])["sid"]
    assert (await harness.me(body["access_token"])).status_code == 200
    again = await harness.client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": got["code"],
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            "client_id": "spa",
        },
    )
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert (await harness.refresh(body["refresh_token"], client_id="spa")).status_code == 400
    # SSO: the third-party client needs no password, but consent.
    verifier2, challenge2 = pkce()
    consent = await harness.client.get("/authorize", params=authorize_params("third", challenge2))
    assert consent.status_code == 200
    assert 'value="allow"' in consent.text
    allowed = await harness.client.post("/authorize", data={**form_of(consent).hidden, "consent": "allow"})
    got2 = callback(allowed)
    token2 = await harness.client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": got2["code"],
            "redirect_uri": REDIRECT,
            "code_verifier": verifier2,
            "client_id": "third",
        },
    )
    assert token2.status_code == 200, token2.text
    # Remembered: straight back with a code.
    _v3, challenge3 = pkce()
    remembered = await harness.client.get("/authorize", params=authorize_params("third", challenge3))
    assert "code" in callback(remembered)
