"""The authorization code flow through the ASGI app: sign in on the hosted page, consent,
redeem the code with PKCE, SSO for a second client, and the single use of codes."""

from __future__ import annotations

import asyncio

from tests.authorize_support import (
    add_browser_client,
    authorize_params,
    callback,
    form_of,
    pkce,
    redeem,
    sign_in,
)
from tests.support import ISSUER, AppHarness, claims_of


async def test_sign_in_consent_redeem_and_sso(db_harness: AppHarness) -> None:
    harness = db_harness
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
    token = await redeem(harness, "spa", got["code"], verifier)
    assert token.status_code == 200, token.text
    body = token.json()
    assert set(body) >= {"access_token", "refresh_token", "id_token"}
    id_claims = claims_of(body["id_token"])
    assert id_claims["aud"] == "spa"
    assert id_claims["nonce"] == "n-1"
    assert id_claims["sid"] == claims_of(body["access_token"])["sid"]
    assert (await harness.me(body["access_token"])).status_code == 200
    again = await redeem(harness, "spa", got["code"], verifier)
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
    token2 = await redeem(harness, "third", got2["code"], verifier2)
    assert token2.status_code == 200, token2.text
    # Remembered: straight back with a code.
    _v3, challenge3 = pkce()
    remembered = await harness.client.get("/authorize", params=authorize_params("third", challenge3))
    assert "code" in callback(remembered)


async def test_of_parallel_redemptions_one_wins_and_then_loses_its_tokens(db_harness: AppHarness) -> None:
    """RFC 6749 §4.1.2: a code used twice revokes what the first use produced, even when the
    uses race (the second may land before the first has recorded its family)."""
    await db_harness.add_user()
    await add_browser_client(db_harness, "spa", first_party=True)
    for _round in range(3):
        verifier, challenge = pkce()
        if _round == 0:
            code = callback(await sign_in(db_harness, "spa", challenge))["code"]
        else:  # signed in: straight back with a code
            page = await db_harness.client.get("/authorize", params=authorize_params("spa", challenge))
            code = callback(page)["code"]
        answers = await asyncio.gather(*(redeem(db_harness, "spa", code, verifier) for _ in range(5)))
        winners = [answer for answer in answers if answer.status_code == 200]
        assert len(winners) <= 1, [answer.text for answer in answers]
        assert all(
            answer.json()["error"] == "invalid_grant" for answer in answers if answer.status_code != 200
        )
        for winner in winners:
            refresh = await db_harness.refresh(winner.json()["refresh_token"], client_id="spa")
            assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"
            assert (await db_harness.me(winner.json()["access_token"])).status_code == 401
