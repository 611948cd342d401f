"""Soak: a real server through many key rotations with zero failed verifications.

Periods of seconds: a key signs for 4 s, sits in the JWKS 2 s before it signs
(plus the time servers take to notice a change), the JWKS may be cached as
long, 2 s; access tokens live 3 s. scripts/rotate_keys.py runs from a loop as cron would, once with
``--force`` and, later, with ``AUTHSVC_SIGNING_ALG=EdDSA`` while the server
keeps its own RS256 setting. A user refreshes continuously; each resource-server
stand-in caches the JWKS for exactly the served max-age (revalidating with
the ETag), never re-fetches on an unknown kid, and verifies every access
token from its issue until its exp.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest

from tests.support import LiveServer
from tests.test_rotation_cli import SCRIPT

JWKS = "/.well-known/jwks.json"
LOOP_SECONDS = 50
WANTED_KIDS = 6  # the first key and five rotations
STAND_INS = 6


class UnknownKid(Exception):
    pass


class StandIn:
    """A resource server that trusts its JWKS cache for exactly max-age seconds."""

    def __init__(self, client: httpx.Client, issuer: str) -> None:
        self.client = client
        self.issuer = issuer
        self.keys: dict[str, dict[str, Any]] = {}
        self.etag: str | None = None
        self.expires = 0.0
        self.fetches = 0
        self.not_modified = 0
        self.max_ages: set[int] = set()

    def keyset(self) -> dict[str, dict[str, Any]]:
        if time.time() >= self.expires:
            headers = {"If-None-Match": self.etag} if self.etag else {}
            response = self.client.get(JWKS, headers=headers)
            received = time.time()
            self.fetches += 1
            max_age = int(re.fullmatch(r"public, max-age=(\d+)", response.headers["cache-control"]).group(1))  # type: ignore[union-attr]
            self.max_ages.add(max_age)
            if response.status_code == 304:
                self.not_modified += 1
            else:
                assert response.status_code == 200
                self.keys = {k["kid"]: k for k in response.json()["keys"]}
                self.etag = response.headers["etag"]
            self.expires = received + max_age
        return self.keys

    def verify(self, token: str) -> dict[str, Any]:
        kid = jwt.get_unverified_header(token)["kid"]
        jwk = self.keyset().get(kid)
        if jwk is None:
            raise UnknownKid(kid)
        return jwt.decode(  # type: ignore[no-any-return]
            token,
            jwt.PyJWK(jwk).key,
            algorithms=[jwk["alg"]],
            audience="authsvc",
            issuer=self.issuer,
            leeway=0,
        )


@dataclass
class Rotator:
    """scripts/rotate_keys.py from a loop, as cron would run it (only more often)."""

    env: dict[str, str]
    stop: threading.Event = field(default_factory=threading.Event)
    runs: list[tuple[list[str], str, int, str, str]] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    forced: bool = False
    alg: str = "RS256"

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                # --force until one lands while no successor is pending (else it changes nothing)
                args = ["--force"] if self.created and not self.forced else []
                if len(self.created) >= 3:
                    self.alg = "EdDSA"
                env = {**self.env, "AUTHSVC_SIGNING_ALG": self.alg}
                result = subprocess.run(
                    [sys.executable, str(SCRIPT), *args],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=90,
                    check=False,
                )
                self.runs.append((args, self.alg, result.returncode, result.stdout, result.stderr))
                if result.returncode != 0 or result.stderr:
                    self.errors.append(f"rotate_keys {args} exited {result.returncode}: {result.stderr}")
                for line in result.stdout.splitlines():
                    # a successor: a new key, or the standby promoted (AUTHSVC_KEY_STANDBY, the default)
                    new = line.startswith("created ") and ", standby:" not in line
                    if new or line.startswith("promote "):
                        self.created.append(line)
                        self.forced = self.forced or ", forced:" in line
                self.stop.wait(0.5)
        except Exception as exc:  # surfaced by the test
            self.errors.append(repr(exc))


@dataclass
class Issued:
    token: str
    kid: str
    alg: str
    exp: float


@pytest.mark.slow
def test_zero_failed_verifications_across_rotations(live_server_factory: Callable[..., LiveServer]) -> None:
    server = live_server_factory(
        signing_alg="RS256",
        key_rotation_period="4",
        key_prepublish="2",
        jwks_max_age="2",  # as long as KEY_PREPUBLISH: the tightest legal setting
        access_token_ttl="3",
        refresh_token_ttl="60",
        clock_skew="0",
    )
    added = server.cli("users", "add", "alice", "--password-stdin", input="pw-alice-1\n")
    assert added.returncode == 0, added.stderr

    rotator = Rotator(server.env)
    thread = threading.Thread(target=rotator.run, daemon=True)
    failures: list[str] = []
    unknown_kids: list[str] = []
    issued: list[Issued] = []
    verifications = 0
    with httpx.Client(base_url=server.url, timeout=10) as client:
        # resource servers whose caches expire out of step, so one of them
        # fetches at any moment a new key could be missing from the JWKS
        stand_ins = [StandIn(client, server.url) for _ in range(STAND_INS)]
        for index, stand_in in enumerate(stand_ins):
            stand_in.keyset()
            stand_in.expires -= 2 * index / STAND_INS  # as if it had fetched a little earlier
        response = client.post(
            "/token", data={"grant_type": "password", "username": "alice", "password": "pw-alice-1"}
        )
        assert response.status_code == 200, response.text
        tokens = response.json()
        thread.start()
        deadline = time.monotonic() + LOOP_SECONDS
        try:
            while time.monotonic() < deadline:
                header = jwt.get_unverified_header(tokens["access_token"])
                claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
                issued.append(
                    Issued(tokens["access_token"], header["kid"], header["alg"], float(claims["exp"]))
                )
                # every live token, the newest first: from its issue until its exp
                now = time.time()
                for item in reversed(issued):
                    if now >= item.exp - 0.05:
                        continue
                    for stand_in in stand_ins:
                        try:
                            stand_in.verify(item.token)
                            verifications += 1
                        except UnknownKid as exc:
                            unknown_kids.append(str(exc))
                        except jwt.PyJWTError as exc:
                            if time.time() < item.exp - 0.05:
                                failures.append(f"{item.kid} {item.alg}: {exc!r}")
                me = client.get("/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
                if me.status_code != 200:
                    failures.append(f"/users/me {me.status_code} {me.text} with {header['kid']}")
                kids = {item.kid for item in issued}
                algs = {item.alg for item in issued}
                if len(kids) >= WANTED_KIDS and algs == {"RS256", "EdDSA"} and rotator.forced:
                    break
                time.sleep(0.15)
                response = client.post(
                    "/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
                )
                if response.status_code != 200:
                    failures.append(f"refresh {response.status_code} {response.text}")
                    break
                tokens = response.json()
        finally:
            rotator.stop.set()
            thread.join(timeout=120)

    kids = {item.kid for item in issued}
    algs = {item.alg for item in issued}
    summary = (
        f"{len(issued)} tokens, {verifications} verifications, kids {len(kids)}, algs {sorted(algs)}, "
        f"{sum(x.fetches for x in stand_ins)} JWKS fetches "
        f"({sum(x.not_modified for x in stand_ins)} not modified), "
        f"{len(rotator.runs)} rotation runs, created: {rotator.created}"
    )
    assert not rotator.errors, rotator.errors
    assert failures == [], summary
    assert unknown_kids == [], summary
    assert len(kids) >= WANTED_KIDS, summary
    assert algs == {"RS256", "EdDSA"}, summary
    assert any("forced" in line for line in rotator.created), summary
    assert any("algorithm changes from RS256" in line for line in rotator.created), summary
    for stand_in in stand_ins:
        assert stand_in.max_ages <= {1, 2}
        assert stand_in.fetches >= 10
    log = server.log_path.read_text()
    assert "Traceback" not in log
    assert "while AUTHSVC_SIGNING_ALG is RS256" in log  # the server warned, and signed with the store's key
