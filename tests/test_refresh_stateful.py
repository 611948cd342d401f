"""A Hypothesis state machine over login / refresh / replay / revoke / disable / time.

It drives the ASGI app (EdDSA keys, a FrozenClock, short lifetimes, grace 5 s)
and keeps a model of every family: its tokens in order, when each was spent,
and the response that spent it. Every answer is predicted from the model, and
after every step the database must agree:

- a revoked family never yields a token (refreshes, replays and its access
  tokens are refused);
- each family has at most one live (unspent, unexpired) refresh token;
- a replay inside the grace window returns exactly the earlier response bytes;
- no token outlives its family's absolute limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sqlalchemy import func, select

from authsvc.app import create_app
from authsvc.clock import FrozenClock
from authsvc.store.sql.tables import refresh_tokens, sessions
from tests.support import ISSUER, claims_of, make_settings

ACCESS_TTL = 20
REFRESH_TTL = 40
MAX_TTL = 100
GRACE = 5
USERS = ("ann", "bob")
PASSWORD = "pw"


@dataclass
class Issued:
    """One token response of a family, and what became of its refresh token."""

    content: bytes
    refresh_token: str
    access_token: str
    refresh_exp: int
    access_exp: int
    spent_at: float | None = None


@dataclass
class Family:
    user: str
    sid: str
    start: float
    issued: list[Issued] = field(default_factory=list)
    revoked: bool = False

    @property
    def limit(self) -> float:
        return self.start + MAX_TTL


class RefreshMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="authsvc-stateful-"))
        self.loop = asyncio.new_event_loop()
        self.clock = FrozenClock(1_800_000_000.0)
        self.settings = make_settings(
            self.tmp,
            signing_alg="EdDSA",
            access_token_ttl=ACCESS_TTL,
            refresh_token_ttl=REFRESH_TTL,
            refresh_token_max_ttl=MAX_TTL,
            refresh_reuse_grace=GRACE,
            clock_skew=0,
        )
        self.app = create_app(self.settings, self.clock)
        self.lifespan = self.app.router.lifespan_context(self.app)
        self.run(self.lifespan.__aenter__())
        self.services = self.app.state.services
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(self.app), base_url=ISSUER)
        self.families: list[Family] = []
        self.disabled: dict[str, bool] = dict.fromkeys(USERS, False)
        for name in USERS:
            password_hash = self.run(self.services.hasher.hash(PASSWORD))
            self.run(
                self.services.users.add(
                    name, password_hash, self.clock.now(), username_key=name, scopes=frozenset({"read"})
                )
            )

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        with contextlib.suppress(Exception):
            self.run(self.client.aclose())
        with contextlib.suppress(Exception):
            self.run(self.lifespan.__aexit__(None, None, None))
        self.run(self.loop.shutdown_asyncgens())
        self.run(self.loop.shutdown_default_executor())
        self.loop.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # --- helpers ------------------------------------------------------------------
    @property
    def now(self) -> float:
        return self.clock.now()

    def post_token(self, data: dict[str, str]) -> httpx.Response:
        return self.run(self.client.post("/token", data=data))  # type: ignore[no-any-return]

    def refresh(self, token: str) -> httpx.Response:
        return self.post_token({"grant_type": "refresh_token", "refresh_token": token})

    def record(self, family: Family, response: httpx.Response) -> Issued:
        """Check a fresh token response against the family and remember it."""
        assert not family.revoked, "a revoked family yielded a token"
        body = response.json()
        refresh, access = claims_of(body["refresh_token"]), claims_of(body["access_token"])
        assert refresh["sid"] == access["sid"] == family.sid
        now = int(self.now)
        assert refresh["exp"] == min(now + REFRESH_TTL, int(family.limit))
        assert access["exp"] == min(now + ACCESS_TTL, int(family.limit))
        assert body["expires_in"] == access["exp"] - now
        assert refresh["exp"] <= family.limit
        assert access["exp"] <= family.limit
        issued = Issued(
            response.content, body["refresh_token"], body["access_token"], refresh["exp"], access["exp"]
        )
        family.issued.append(issued)
        return issued

    def pick(self, index: int) -> Family:
        return self.families[index % len(self.families)]

    def pick_live(self, index: int) -> Family:
        """Mostly a family that can still grow; sometimes (and when none can) any family."""
        live = [f for f in self.families if not f.revoked and self.now < f.issued[-1].refresh_exp]
        if not live or index % 5 == 0:
            return self.pick(index)
        return live[index % len(live)]

    @staticmethod
    def assert_invalid_grant(response: httpx.Response) -> None:
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_grant"

    # --- rules ----------------------------------------------------------------------
    @initialize()
    def first_login(self) -> None:
        self.login(USERS[0])

    @precondition(lambda self: len(self.families) < 4)  # few families, so they grow deep
    @rule(user=st.sampled_from(USERS))
    def login(self, user: str) -> None:
        response = self.post_token({"grant_type": "password", "username": user, "password": PASSWORD})
        if self.disabled[user]:
            self.assert_invalid_grant(response)
            return
        assert response.status_code == 200, response.text
        sid = claims_of(response.json()["refresh_token"])["sid"]
        assert sid not in {f.sid for f in self.families}
        family = Family(user, sid, self.now)
        self.families.append(family)
        self.record(family, response)

    @precondition(lambda self: self.families)
    @rule(index=st.integers(0, 50))
    def refresh_latest(self, index: int) -> None:
        """The legitimate holder refreshes with the newest token of the family."""
        family = self.pick_live(index)
        latest = family.issued[-1]
        response = self.refresh(latest.refresh_token)
        if family.revoked or self.now >= latest.refresh_exp:
            self.assert_invalid_grant(response)
            return
        assert latest.spent_at is None
        assert response.status_code == 200, response.text
        latest.spent_at = self.now
        self.record(family, response)

    @precondition(lambda self: any(len(f.issued) > 1 for f in self.families))
    @rule(index=st.integers(0, 50), which=st.integers(0, 50))
    def replay(self, index: int, which: int) -> None:
        """Someone presents a spent token of the family again."""
        candidates = [f for f in self.families if len(f.issued) > 1]
        family = candidates[index % len(candidates)]
        position = which % (len(family.issued) - 1)
        token, successor = family.issued[position], family.issued[position + 1]
        assert token.spent_at is not None
        response = self.refresh(token.refresh_token)
        if self.now >= token.refresh_exp or family.revoked:
            event("replay: expired or revoked")
            self.assert_invalid_grant(response)
            return
        if self.now < token.spent_at + GRACE and successor.spent_at is None:
            event("replay: inside grace")
            assert response.status_code == 200, response.text
            assert response.content == successor.content, "grace replay must return the first body"
            return
        event("replay: reuse " + ("inside the window" if self.now < token.spent_at + GRACE else "after it"))
        self.assert_invalid_grant(response)  # reuse: the whole family ends
        family.revoked = True

    @precondition(lambda self: self.families)
    @rule(index=st.integers(0, 50), which=st.integers(0, 50), hint=st.sampled_from([None, "refresh_token"]))
    def revoke(self, index: int, which: int, hint: str | None) -> None:
        family = self.pick(index)
        token = family.issued[which % len(family.issued)]
        data = {"token": token.refresh_token, **({"token_type_hint": hint} if hint else {})}
        response = self.run(self.client.post("/revoke", data=data))
        assert response.status_code == 200, response.text
        if self.now < token.refresh_exp:
            family.revoked = True

    @rule(user=st.sampled_from(USERS))
    def disable(self, user: str) -> None:
        """What `authsvc users disable` does."""
        user_record = self.run(self.services.users.by_username(user))
        self.run(self.services.users.set_disabled(user, True, self.now))
        self.run(self.services.session_store.revoke_user(user_record.id, self.now, "user_disabled"))
        self.disabled[user] = True
        for family in self.families:
            if family.user == user:
                family.revoked = True

    @rule(seconds=st.sampled_from([1, 1, 2, 3, 4, 5, 6, 21, 41]))
    def advance(self, seconds: int) -> None:
        self.clock.advance(seconds)

    # --- invariants -----------------------------------------------------------------
    @invariant()
    def access_tokens_follow_their_family(self) -> None:
        """The newest access token of each family works exactly while the family is live."""
        for family in self.families:
            latest = family.issued[-1]
            headers = {"Authorization": f"Bearer {latest.access_token}"}
            response = self.run(self.client.get("/users/me", headers=headers))
            live = not family.revoked and self.now < latest.access_exp
            assert response.status_code == (200 if live else 401), response.text

    @invariant()
    def database_agrees(self) -> None:
        async def read() -> tuple[list[Any], list[Any], list[Any]]:
            async with self.services.engine.connect() as conn:
                live = (
                    await conn.execute(
                        select(refresh_tokens.c.session_id, func.count())
                        .where(refresh_tokens.c.spent_at.is_(None), refresh_tokens.c.expires_at > self.now)
                        .group_by(refresh_tokens.c.session_id)
                    )
                ).all()
                rows = (await conn.execute(select(sessions.c.id, sessions.c.revoked_at))).all()
                outliving = (
                    await conn.execute(
                        select(refresh_tokens.c.jti)
                        .join(sessions, sessions.c.id == refresh_tokens.c.session_id)
                        .where(refresh_tokens.c.expires_at > sessions.c.expires_at)
                    )
                ).all()
            return live, rows, outliving

        live, rows, outliving = self.run(read())
        assert all(n <= 1 for _sid, n in live), "a family has more than one live refresh token"
        assert outliving == [], "a refresh token outlives its family"
        revoked_in_db = {sid for sid, revoked_at in rows if revoked_at is not None}
        assert revoked_in_db == {f.sid for f in self.families if f.revoked}


RefreshMachine.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRefreshFamilies = RefreshMachine.TestCase
