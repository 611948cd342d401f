"""Issue #13, finding 19: an emergency revoke must not break verifiers that cache the JWKS.

A live ``authsvc serve``; three resource-server libraries at their DEFAULT cache
settings — PyJWT's ``PyJWKClient``, panva ``jose`` (``createRemoteJWKSet`` +
``jwtVerify``) and ``oauth4webapi`` (``validateJwtAccessToken``) in Node — verify
a continuous stream of fresh access tokens while ``authsvc keys revoke <signing
kid>`` runs. None of them reads ``Cache-Control``; each re-fetches an unknown kid
only after a cooldown (30 s, 30 s, 60 s). With the standby key
(``AUTHSVC_KEY_STANDBY``, the default) the key that signs after the revoke is
one every cache already holds: zero failures. With ``AUTHSVC_KEY_STANDBY=false``
the same stream fails in every library, which shows the test can fail.

Node's packages are pinned in tests/interop/package-lock.json; ``.ci/run`` runs
``npm ci`` there. Locally the test skips when they are not installed; with
``CI`` set it fails instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest

from tests.support import LiveServer

INTEROP = Path(__file__).resolve().parent / "interop"
SECRET_LINE = re.compile(r"client secret \(shown once, store it now\): (\S+)")
AUDIENCE = "orders-api"
BEFORE_REVOKE = 2.0  # seconds of stream before the revoke: well inside every library's cooldown
AFTER_CHANGE = 3.0  # seconds of stream once the new key signs
NEW_KEY_TOKENS = 10  # at least this many tokens signed by the new key are verified


def node_modules_or_skip() -> str:
    node = shutil.which("node")
    ready = (INTEROP / "node_modules" / "jose").is_dir() and (
        INTEROP / "node_modules" / "oauth4webapi"
    ).is_dir()
    if node is None or not ready:
        reason = "node and tests/interop/node_modules are needed: run `npm ci` in tests/interop"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (.ci/run does)")
        pytest.skip(reason)
    return node


@dataclass
class Outcome:
    kid: str
    pyjwt: str
    jose: str
    oauth4webapi: str

    def failures(self) -> list[str]:
        return [name for name in ("pyjwt", "jose", "oauth4webapi") if getattr(self, name) != "ok"]


class NodeVerifiers:
    """One long-lived Node process: its two libraries keep their JWKS caches across the stream."""

    def __init__(self, node: str, issuer: str) -> None:
        self.process = subprocess.Popen(
            [node, str(INTEROP / "verify_stream.mjs"), issuer, AUDIENCE],
            cwd=INTEROP,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

    def verify(self, token: str) -> dict[str, str]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(token + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            assert self.process.stderr is not None
            raise AssertionError(f"the Node verifier died: {self.process.stderr.read()}")
        return json.loads(line)  # type: ignore[no-any-return]

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def node() -> str:
    return node_modules_or_skip()


def service_client(server: LiveServer) -> tuple[str, str]:
    added = server.cli(
        "clients", "add", "orders-reader", "--grant", "client_credentials", "--scope", "orders:read",
        "--audience", AUDIENCE,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    match = SECRET_LINE.search(added.stdout)
    assert match is not None, added.stdout
    return "orders-reader", match.group(1)


def pyjwt_outcome(client: jwt.PyJWKClient, token: str, issuer: str) -> str:
    try:
        key = client.get_signing_key_from_jwt(token)
        jwt.decode(token, key, algorithms=["EdDSA", "RS256"], audience=AUDIENCE, issuer=issuer)
    except jwt.PyJWTError as exc:
        return type(exc).__name__
    return "ok"


def stream_across_a_revoke(server: LiveServer, node: str) -> tuple[str, str, list[Outcome]]:
    """Mint and verify tokens before and after ``keys revoke`` of the signing kid."""
    client_id, secret = service_client(server)
    verifiers = NodeVerifiers(node, server.url)
    pyjwt_client = jwt.PyJWKClient(server.url + "/.well-known/jwks.json")  # every default
    outcomes: list[Outcome] = []
    revoked = new_kid = ""
    started = time.monotonic()
    new_since: float | None = None
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            while True:
                response = http.post(
                    "/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
                )
                assert response.status_code == 200, response.text
                token = response.json()["access_token"]
                kid = jwt.get_unverified_header(token)["kid"]
                node_result = verifiers.verify(token)
                outcomes.append(Outcome(kid, pyjwt_outcome(pyjwt_client, token, server.url), **node_result))
                now = time.monotonic()
                if not revoked and now - started >= BEFORE_REVOKE:
                    revoked = kid
                    result = server.cli("keys", "revoke", revoked)
                    assert result.returncode == 0, result.stderr
                if revoked and kid != revoked:
                    new_kid = new_kid or kid
                    new_since = new_since or now
                    done = sum(1 for o in outcomes if o.kid == new_kid) >= NEW_KEY_TOKENS
                    if done and now - new_since >= AFTER_CHANGE:
                        break
                assert now - started < 25, "the stream never reached the new signing key"
                time.sleep(0.02)
    finally:
        verifiers.close()
    return revoked, new_kid, outcomes


@pytest.fixture
def stream(
    live_server_factory: Callable[..., LiveServer], node: str
) -> Callable[[str], tuple[str, str, list[Outcome]]]:
    def run(standby: str) -> tuple[str, str, list[Outcome]]:
        server = live_server_factory(signing_alg="EdDSA", key_standby=standby)
        return stream_across_a_revoke(server, node)

    return run


def test_no_verifier_fails_across_an_emergency_revoke(
    stream: Callable[[str], tuple[str, str, list[Outcome]]],
) -> None:
    revoked, new_kid, outcomes = stream("true")
    assert new_kid and new_kid != revoked
    assert sum(1 for o in outcomes if o.kid == new_kid) >= NEW_KEY_TOKENS
    failed = [o for o in outcomes if o.failures()]
    assert failed == [], f"{len(failed)} of {len(outcomes)} verifications failed: {failed[:5]}"


def test_without_a_standby_the_same_stream_fails_in_every_library(
    stream: Callable[[str], tuple[str, str, list[Outcome]]],
) -> None:
    """The control: the verifiers' cooldowns do refuse a key they have never seen."""
    revoked, new_kid, outcomes = stream("false")
    assert new_kid and new_kid != revoked
    before = [o for o in outcomes if o.kid == revoked]
    assert before and not [o for o in before if o.failures()], "the stream must start healthy"
    after = [o for o in outcomes if o.kid == new_kid]
    for library in ("pyjwt", "jose", "oauth4webapi"):
        assert [o for o in after if library in o.failures()], f"{library} accepted an unseen key at once"
