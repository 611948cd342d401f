"""A refresh token is authenticated by its row: the digest of the exact bytes issued.

The refresh grant does not check our own signature again (the profile's
largest single cost of a refresh); the row's SHA-256 of the token decides,
inside the compare-and-set. These attacks present bytes that are not the ones
issued — a widened scope with the signature kept, another session, a later
expiry, a flipped signature — and each must be refused without spending or revoking
anything. Rows written before revision 0007 have no digest: for them the
signature still decides, inside the same transaction.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from sqlalchemy import select, update

from authsvc.store.sql.tables import refresh_tokens, sessions
from tests.support import AppHarness, assert_error, claims_of


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def with_claims(token: str, **changes: Any) -> str:
    """The token with its payload changed and its header and signature kept."""
    header, _payload, signature = token.split(".")
    claims = claims_of(token)
    claims.update(changes)
    for name, value in changes.items():
        if value is None:
            del claims[name]
    return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"


def flipped_signature(token: str) -> str:
    header, payload, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[0] ^= 1
    return f"{header}.{payload}.{_b64(bytes(raw))}"


async def _row(harness: AppHarness, jti: str) -> Any:
    async with harness.services.engine.connect() as conn:
        return (await conn.execute(select(refresh_tokens).where(refresh_tokens.c.jti == jti))).first()


async def _family_revoked(harness: AppHarness, sid: str) -> bool:
    async with harness.services.engine.connect() as conn:
        row = (await conn.execute(select(sessions.c.revoked_at).where(sessions.c.id == sid))).first()
    return row is not None and row.revoked_at is not None


async def _forget_digest(harness: AppHarness, jti: str) -> None:
    """Make the row look as if written before revision 0007."""
    async with harness.services.engine.begin() as conn:
        await conn.execute(update(refresh_tokens).where(refresh_tokens.c.jti == jti).values(digest=None))


async def _login(harness: AppHarness) -> dict[str, Any]:
    await harness.add_user()
    response = await harness.login()
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _forgeries(token: str) -> dict[str, str]:
    return {
        "widened scope": with_claims(token, scope="read write admin"),
        "another session": with_claims(token, sid="s_other"),
        "later expiry": with_claims(token, exp=claims_of(token)["exp"] + 10**6),
        "flipped signature": flipped_signature(token),
    }


async def test_the_row_keeps_the_digest_of_the_bytes_issued(harness: AppHarness) -> None:
    tokens = await _login(harness)
    token = tokens["refresh_token"]
    row = await _row(harness, claims_of(token)["jti"])
    assert row is not None and row.digest is not None and len(row.digest) == 64


async def test_bytes_not_issued_are_refused_and_spend_nothing(harness: AppHarness) -> None:
    tokens = await _login(harness)
    token = tokens["refresh_token"]
    jti, sid = claims_of(token)["jti"], claims_of(token)["sid"]
    for what, forged in _forgeries(token).items():
        response = await harness.refresh(forged)
        assert_error(response, 400, "invalid_grant")
        row = await _row(harness, jti)
        assert row.spent_at is None, f"expected the live token unspent after a forgery ({what})"
    assert not await _family_revoked(harness, sid)
    response = await harness.refresh(token)
    assert response.status_code == 200, "expected the real token still good"


async def test_a_forgery_of_a_spent_token_is_not_taken_for_reuse(harness: AppHarness) -> None:
    tokens = await _login(harness)
    token = tokens["refresh_token"]
    sid = claims_of(token)["sid"]
    successor = (await harness.refresh(token)).json()["refresh_token"]
    for what, forged in _forgeries(token).items():
        assert_error(await harness.refresh(forged), 400, "invalid_grant")
        assert not await _family_revoked(harness, sid), f"expected no family revoked by a forgery ({what})"
    assert (await harness.refresh(successor)).status_code == 200
    # The real spent token is reuse, as ever.
    assert_error(await harness.refresh(token), 400, "invalid_grant")
    assert await _family_revoked(harness, sid)


async def test_a_row_from_before_digests_still_needs_our_signature(harness: AppHarness) -> None:
    tokens = await _login(harness)
    token = tokens["refresh_token"]
    jti, sid = claims_of(token)["jti"], claims_of(token)["sid"]
    await _forget_digest(harness, jti)
    for what, forged in _forgeries(token).items():
        assert_error(await harness.refresh(forged), 400, "invalid_grant")
        row = await _row(harness, jti)
        assert row.spent_at is None, f"expected the forged spend of an old row rolled back ({what})"
    assert not await _family_revoked(harness, sid)
    response = await harness.refresh(token)
    assert response.status_code == 200, "expected an old row's real token to rotate"
    new_row = await _row(harness, claims_of(response.json()["refresh_token"])["jti"])
    assert new_row.digest is not None, "expected the successor stored with its digest"
    for forged in _forgeries(token).values():
        assert_error(await harness.refresh(forged), 400, "invalid_grant")
    assert not await _family_revoked(harness, sid), "expected a forged replay of an old row not reuse"


# --- a spent token of a key revoked since (found by the one-hour soak) ---------------------------
async def test_a_spent_token_of_a_revoked_key_replayed_is_still_reuse(harness_factory: Any) -> None:
    """A refresh token is spent, the key that signed it is revoked, then it comes back. Before,
    the revoked kid refused it before the database was asked, so the reuse went unnoticed and
    the family's latest token (signed by the new key) kept working."""
    from authsvc.keys.rotation import revoke_key, rotate
    from authsvc.keys.setup import lifetimes
    from tests.support import wait_for_key_poll

    harness: AppHarness = await harness_factory(signing_alg="EdDSA", key_standby=False)
    tokens = await _login(harness)
    spent = tokens["refresh_token"]
    old = harness.services.keys.signing_key().kid
    store = harness.services.key_watcher.store
    life = lifetimes(harness.settings)
    (created,) = [
        c for c in rotate(store, life, harness.clock, "EdDSA", None, force=True) if c.action == "created"
    ]
    new = next(k for k in store.read().keys if k.kid == created.kid)
    harness.clock.advance(new.sign_from - harness.clock.now() + 1)  # the new key signs; the old retires
    await wait_for_key_poll(harness.services)
    latest = (await harness.refresh(spent)).json()["refresh_token"]
    assert claims_of(latest)["sid"] == claims_of(spent)["sid"]
    assert harness.services.keys.signing_key().kid != old, "expected the new key to sign the successor"
    revoke_key(store, old, harness.clock, "EdDSA", None)
    await wait_for_key_poll(harness.services)

    assert_error(await harness.refresh(spent), 400, "invalid_grant")
    assert await _family_revoked(harness, claims_of(spent)["sid"]), "expected the replay taken for reuse"
    assert_error(await harness.refresh(latest), 400, "invalid_grant")


async def test_an_unspent_token_of_a_revoked_key_is_refused_and_revokes_nothing(
    harness_factory: Any,
) -> None:
    from authsvc.keys.rotation import revoke_key, rotate
    from authsvc.keys.setup import lifetimes
    from tests.support import wait_for_key_poll

    harness: AppHarness = await harness_factory(signing_alg="EdDSA", key_standby=False)
    tokens = await _login(harness)
    token = tokens["refresh_token"]
    old = harness.services.keys.signing_key().kid
    store = harness.services.key_watcher.store
    rotate(store, lifetimes(harness.settings), harness.clock, "EdDSA", None, force=True)
    revoke_key(store, old, harness.clock, "EdDSA", None)
    await wait_for_key_poll(harness.services)
    for presented in (token, with_claims(token, scope="admin")):
        assert_error(await harness.refresh(presented), 400, "invalid_grant")
    row = await _row(harness, claims_of(token)["jti"])
    assert row.spent_at is None
    assert not await _family_revoked(harness, claims_of(token)["sid"])
