"""The decisions about a refresh-token family, inside one store transaction: RFC 9700 §4.14.

``open_family`` and ``rotate_family`` are written against the statements of a
``SessionTransaction`` and run inside one store transaction they are handed
(on the store's worker thread):

* a login writes its session, then re-reads the user and client under a lock:
  a password change, disable or client removal that won the race leaves no
  session behind (CONTRACT.md, Trust rules);
* a refresh spends the presented token with a compare-and-set that also
  matches the digest of the bytes issued; the winner records its successor
  (and, with a grace window, the response it returns);
* a spent token that comes back is a replay: inside the grace, while its
  successor is unspent, it gets the stored response again; otherwise it is
  reuse, and the whole family is revoked. Bytes that are not the ones issued
  are neither.

``authsvc.tokens.families.Families`` is the service around them.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from authsvc.store.protocols import Claim, SessionTransaction, SessionWriter
from authsvc.store.records import IssuedRefreshToken, SessionRecord, SpendRequest

__all__ = [
    "Outcome",
    "Refresh",
    "Rotation",
    "open_family",
    "open_session",
    "replay_under_distrusted_key",
    "rotate",
    "rotate_family",
]


class Outcome(StrEnum):
    ROTATED = "rotated"  # the token was spent now; body is the new response
    REPLAYED = "replayed"  # a retry inside the grace window; body is the first response
    REUSED = "reused"  # a spent token came back: the family is now revoked
    INVALID = "invalid"  # unknown, expired, revoked, another client's, or its session ended


@dataclass(frozen=True, slots=True)
class Rotation:
    outcome: Outcome
    body: str | None = None
    session_id: str | None = None
    reason: str = ""


class _Ended(Exception):
    """The session ended under the spend: raised to roll the spend back."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id


class _Forged(Exception):
    """A row without a digest was spent by a token whose signature is not ours: roll back."""


class _Stale(Exception):
    """The user or client changed after the login read them: roll the session back."""


# --- the decisions, inside a transaction --------------------------------------------
def open_family(
    tx: SessionTransaction,
    session: SessionRecord,
    first: Callable[[SessionRecord], IssuedRefreshToken],
    *,
    credentials_version: int,
    registered_client: bool,
    claim: Claim | None = None,
) -> IssuedRefreshToken:
    """Write a new session and its first token, unless the login's reads went stale.

    The session row comes first, then the re-reads under a share lock: a
    credential change or removal either committed before (the versions differ:
    this raises and nothing is written) or waits for this transaction and then
    revokes the session it wrote. ``claim``: what else the login must hold or
    record in the same transaction (a code redemption: its browser session still
    live, the family noted on the code); it raises to write nothing.
    """
    tx.insert_session(session)
    user = tx.user_credentials(session.user_id)
    if user is None or user[1] or user[0] != credentials_version:
        raise _Stale
    if registered_client and not tx.client_live(session.client_id):
        raise _Stale
    if claim is not None:
        claim(tx, session)
    token = first(session)
    if token.stored:
        tx.insert_token(token, session)
    return token


@dataclass(frozen=True, slots=True)
class Refresh:
    """A presented refresh token and what to record if it is spent now.

    ``digest``: SHA-256 of the presented bytes; ``signed``: our signature check
    of them, asked only for a row from before digests were kept; ``successor``:
    the new tokens (signed inside the transaction), carrying ``successor_jti``.
    """

    jti: str
    client_id: str
    now: float
    grace: int
    successor_jti: str
    successor: Callable[[SessionRecord], IssuedRefreshToken]
    digest: str
    signed: Callable[[], bool]

    def spend_request(self) -> SpendRequest:
        """The compare-and-set this refresh begins with (a store may run it ahead: ``rotate``)."""
        return SpendRequest(self.jti, self.client_id, self.now, self.successor_jti, self.digest)


def rotate_family(tx: SessionTransaction, refresh: Refresh) -> Rotation:
    """Spend the presented token and record its successor, or decide what a replay of it means.

    The presented token is authentic when its digest is the one its row
    keeps; a row from before digests were kept asks ``signed`` (our signature
    check) instead. An inauthentic token never spends nor revokes anything.
    """
    jti, now, grace, successor_jti = refresh.jti, refresh.now, refresh.grace, refresh.successor_jti
    spent = tx.spend(refresh.spend_request())
    if spent is None:
        return _replayed(tx, refresh)
    if spent.digest is None and not refresh.signed():
        raise _Forged
    found = spent.session
    if found is None or _ended(found, now):  # None: its user is gone
        raise _Ended(spent.session_id)
    session = found[0]
    token = refresh.successor(session)
    if token.jti != successor_jti:
        raise ValueError("the successor must carry the jti the spend recorded")
    tx.insert_token(token, session)
    if grace > 0:
        # Older generations can never be replayed now (their successors are spent):
        # their stored bodies go at once rather than at the next sweep.
        tx.drop_grace_bodies(session.id, keep=jti)
        tx.keep_grace_body(jti, token.body, now + grace)
    return Rotation(Outcome.ROTATED, body=token.body, session_id=session.id)


def replay_under_distrusted_key(tx: SessionTransaction, refresh: Refresh) -> Rotation:
    """A token whose key we no longer trust (revoked, retired): never spent now, but if its row
    says these exact bytes were spent, a replay is still a replay (grace, else reuse: the family
    is revoked, as for any spent token that comes back). Only the stored digest vouches for
    the bytes here: a row from before digests, or unspent, is simply refused."""
    token = tx.token(refresh.jti)
    if token is None or token.digest is None or token.spent_at is None:
        return Rotation(Outcome.INVALID, reason="unknown or retired kid")
    return _replayed(tx, refresh)


def _replayed(tx: SessionTransaction, refresh: Refresh) -> Rotation:
    """A token the compare-and-set did not spend: unknown, forged, expired, or a replay."""
    client_id, now, digest = refresh.client_id, refresh.now, refresh.digest
    token = tx.token(refresh.jti)
    if token is None:
        return Rotation(Outcome.INVALID, reason="unknown refresh token")
    if token.digest is not None and not hmac.compare_digest(token.digest, digest):
        return Rotation(Outcome.INVALID, reason="not the token issued")  # never reuse: nothing revoked
    if token.digest is None and not refresh.signed():
        return Rotation(Outcome.INVALID, reason="bad signature")
    if token.client_id != client_id:
        return Rotation(Outcome.INVALID, session_id=token.session_id, reason="other client")
    if token.spent_at is None:
        return Rotation(Outcome.INVALID, session_id=token.session_id, reason="expired")
    found = tx.session_and_user_disabled(token.session_id)
    if found is None or _ended(found, now):
        return Rotation(Outcome.INVALID, session_id=token.session_id, reason="session ended")
    if (
        token.grace_body is not None
        and token.grace_until is not None
        and now < token.grace_until
        and token.successor_jti is not None
        and tx.is_unspent(token.successor_jti)
    ):
        return Rotation(Outcome.REPLAYED, body=token.grace_body, session_id=token.session_id)
    tx.revoke_session(token.session_id, now, "reuse")
    tx.drop_grace_bodies(token.session_id)
    return Rotation(Outcome.REUSED, session_id=token.session_id, reason="reuse")


def _ended(found: tuple[SessionRecord, bool], now: float) -> bool:
    session, user_disabled = found
    return session.revoked_at is not None or session.expires_at <= now or user_disabled


async def rotate(store: SessionWriter, refresh: Refresh) -> Rotation:
    """``rotate_family`` in one transaction of ``store``; a session that ended, or a forged
    token, rolls the spend back."""
    try:
        return await store.write(lambda tx: rotate_family(tx, refresh), spend=refresh.spend_request())
    except _Ended as ended:
        return Rotation(Outcome.INVALID, session_id=ended.session_id, reason="session ended")
    except _Forged:
        return Rotation(Outcome.INVALID, reason="bad signature")


async def open_session(
    store: SessionWriter,
    session: SessionRecord,
    first: Callable[[SessionRecord], IssuedRefreshToken],
    *,
    credentials_version: int,
    registered_client: bool,
    claim: Claim | None = None,
) -> IssuedRefreshToken | None:
    """``open_family`` in one transaction of ``store``; None when the login's reads went stale
    (what ``claim`` raises comes through)."""
    try:
        return await store.write(
            lambda tx: open_family(
                tx,
                session,
                first,
                credentials_version=credentials_version,
                registered_client=registered_client,
                claim=claim,
            )
        )
    except _Stale:
        return None
