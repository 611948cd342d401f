"""The authorization code flow through the ASGI app: sign in on the hosted page, consent,
redeem the code with PKCE, SSO for a second client, and the single use of codes."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from authsvc.browser.cookies import digest
from authsvc.store.records import SessionRecord
from authsvc.store.sql.tables import authorization_codes
from authsvc.tokens import families as families_module
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


async def test_codes_of_one_sso_session_redeemed_at_once_all_succeed(db_harness: AppHarness) -> None:
    """Redemptions that land together share transactions (group commit): one code's checks must
    not refuse or roll back another's."""
    await db_harness.add_user()
    await add_browser_client(db_harness, "spa", first_party=True)
    verifier, challenge = pkce()
    codes = [(callback(await sign_in(db_harness, "spa", challenge))["code"], verifier)]
    for _ in range(20):
        verifier, challenge = pkce()
        page = await db_harness.client.get("/authorize", params=authorize_params("spa", challenge))
        codes.append((callback(page)["code"], verifier))
    answers = await asyncio.gather(*(redeem(db_harness, "spa", code, v) for code, v in codes))
    assert [a.status_code for a in answers] == [200] * len(codes), [a.text for a in answers][:3]
    sids = {claims_of(a.json()["access_token"])["sid"] for a in answers}
    assert len(sids) == len(codes), "two redemptions share a family"


async def _user_id(harness: AppHarness) -> str:
    user = await harness.services.users.by_username("alice")
    assert user is not None
    return user.id


async def test_a_logout_just_before_the_family_opens_leaves_no_live_family(
    db_harness: AppHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The browser session behind a code ends while the redemption is between its spend and its
    family: the family's transaction sees the logout (or the logout sees the family), never
    neither. Before the check moved into that transaction, a read ahead of it let this through."""
    await db_harness.add_user()
    await add_browser_client(db_harness, "spa", first_party=True)
    verifier, challenge = pkce()
    code = callback(await sign_in(db_harness, "spa", challenge))["code"]
    opening = families_module.open_session

    async def logout_first(store: Any, session: SessionRecord, *args: Any, **kwargs: Any) -> Any:
        assert session.browser_session_id is not None
        await db_harness.services.browser_store.end_browser_session(
            session.browser_session_id, db_harness.clock.now()
        )
        return await opening(store, session, *args, **kwargs)

    monkeypatch.setattr(families_module, "open_session", logout_first)
    answer = await redeem(db_harness, "spa", code, verifier)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant", answer.text
    live = await db_harness.services.session_store.live_for_user(
        await _user_id(db_harness), db_harness.clock.now()
    )
    assert live == [], "a family opened for a browser session that had ended"
    monkeypatch.undo()
    again = await redeem(db_harness, "spa", code, verifier)
    assert again.json()["error"] == "invalid_grant", "the failed redemption did not spend the code"


async def test_a_second_redemption_just_before_the_family_opens_leaves_no_live_family(
    db_harness: AppHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RFC 6749 §4.1.2 at its narrowest: the second use lands after the first spent the code and
    before it opened its family. Both are refused and no family is left live."""
    await db_harness.add_user()
    await add_browser_client(db_harness, "spa", first_party=True)
    verifier, challenge = pkce()
    code = callback(await sign_in(db_harness, "spa", challenge))["code"]
    opening = families_module.open_session
    seconds: list[httpx.Response] = []

    async def reuse_first(*args: Any, **kwargs: Any) -> Any:
        if not seconds:
            seconds.append(await redeem(db_harness, "spa", code, verifier))
        return await opening(*args, **kwargs)

    monkeypatch.setattr(families_module, "open_session", reuse_first)
    first = await redeem(db_harness, "spa", code, verifier)
    assert first.status_code == 400 and first.json()["error"] == "invalid_grant", first.text
    assert seconds[0].status_code == 400 and seconds[0].json()["error"] == "invalid_grant"
    live = await db_harness.services.session_store.live_for_user(
        await _user_id(db_harness), db_harness.clock.now()
    )
    assert live == []


async def test_logouts_racing_redemptions_never_leave_a_live_family(db_harness: AppHarness) -> None:
    """Each round signs in afresh, then sends the redemption and the logout of its browser session
    at once; whichever lands first, nothing opened by that sign-in outlives the logout."""
    await db_harness.add_user()
    await add_browser_client(db_harness, "spa", first_party=True)
    user_id = await _user_id(db_harness)
    store = db_harness.services.browser_store
    for round_ in range(6):
        db_harness.client.cookies.clear()
        verifier, challenge = pkce()
        code = callback(await sign_in(db_harness, "spa", challenge))["code"]
        browser_session_id = await store.db.read(  # the code's browser session, without spending it
            lambda conn, c=code: conn.execute(
                select(authorization_codes.c.browser_session_id).where(authorization_codes.c.id == digest(c))
            ).scalar_one()
        )
        answer, _ended = await asyncio.gather(
            redeem(db_harness, "spa", code, verifier),
            store.end_browser_session(browser_session_id, db_harness.clock.now()),
        )
        assert answer.status_code in (200, 400), answer.text
        live = await db_harness.services.session_store.live_for_user(user_id, db_harness.clock.now())
        assert live == [], (
            f"round {round_}: a family outlived the logout of its sign-in ({answer.status_code})"
        )
