"""The audit trail: one JSON line per event, with the identifiers an investigation needs.

Lines are produced by :class:`authsvc.logs.AuditJsonFormatter` on the
``authsvc.audit`` logger. HTTP-triggered events carry the request id (the
caller's ``X-Request-ID`` when sane, echoed in the response); CLI and key
events carry the user, client or kid they changed. No line carries a secret.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from authsvc.clock import SystemClock
from authsvc.keys.rotation import create_first_key, revoke_key, rotate
from authsvc.keys.setup import lifetimes
from authsvc.keys.store_file import FileKeyStore
from authsvc.logs import AuditJsonFormatter, audit_logger
from tests.support import AppHarness, create_database, run_cli, server_env

PASSWORD = "correct horse battery 42"


class AuditLines(logging.Handler):
    """Formats each audit record as it is emitted, the way ``serve`` writes them."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.setFormatter(AuditJsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def events(self, name: str) -> list[dict[str, Any]]:
        parsed = [json.loads(line) for line in self.lines]
        return [line for line in parsed if line.get("event") == name]

    def one(self, name: str, **expected: Any) -> dict[str, Any]:
        found = self.events(name)
        assert len(found) == 1, f"expected one {name} event, got {found} (all: {self.lines})"
        line = found[0]
        for key, value in expected.items():
            assert line.get(key) == value, f"expected {name}.{key} == {value!r}, got {line}"
        return line


@pytest.fixture
def audit() -> Iterator[AuditLines]:
    handler = AuditLines()
    logger = audit_logger()
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def assert_well_formed(lines: list[str], secrets: list[str]) -> None:
    for line in lines:
        data = json.loads(line)
        assert isinstance(data, dict) and "\n" not in line, f"expected one JSON object per line: {line}"
        for key in ("ts", "level", "message", "event"):
            assert key in data, f"expected {key!r} in every audit line: {line}"
        for secret in secrets:
            assert secret not in line, f"expected no secret in the audit line {line}"


# --- events triggered over HTTP -----------------------------------------------------------------------
async def test_http_events_carry_identifiers_and_the_request_id(
    harness_factory: Callable[..., Any], audit: AuditLines
) -> None:
    h: AppHarness = await harness_factory(signing_alg="EdDSA", refresh_reuse_grace=5, login_max_per_user=2)
    user = await h.add_user(password=PASSWORD)
    secret = await h.add_service_client("reports", scopes=frozenset({"read"}), audiences=("orders-api",))

    def rid(name: str) -> dict[str, str]:
        return {"X-Request-ID": name}

    login = await h.client.post(
        "/token",
        data={"grant_type": "password", "username": "alice", "password": PASSWORD},
        headers=rid("req-login"),
    )
    assert login.headers["x-request-id"] == "req-login", "expected the request id echoed"
    tokens = login.json()
    ids = {"user_id": user.id, "client_id": "cli"}
    audit.one("login.succeeded", request_id="req-login", **ids)
    started = audit.one("session.started", request_id="req-login", **ids)
    sid = started["sid"]
    assert isinstance(sid, str) and sid.startswith("s_"), f"expected the session id, got {started}"

    bad = {"grant_type": "password", "username": "alice", "password": "wrong"}
    await h.client.post("/token", data=bad, headers=rid("req-bad"))
    failed = audit.one("login.failed", request_id="req-bad", **ids)
    assert failed["level"] == "info"
    await h.client.post("/token", data={**bad, "username": "nobody"}, headers=rid("req-nobody"))
    unknown = [e for e in audit.events("login.failed") if e.get("request_id") == "req-nobody"]
    assert len(unknown) == 1 and "user_id" not in unknown[0], (
        f"expected no user id for an unknown name: {unknown}"
    )

    await h.add_user("bob")
    bob = {**bad, "username": "bob"}
    for n in range(2):
        await h.client.post("/token", data=bob, headers=rid(f"req-bob-{n}"))
    limited = await h.client.post("/token", data=bob, headers=rid("req-limited"))
    assert limited.status_code == 429
    audit.one("login.rate_limited", request_id="req-limited")

    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    rotated = await h.client.post("/token", data=refresh, headers=rid("req-refresh"))
    assert rotated.status_code == 200
    audit.one("refresh.rotated", request_id="req-refresh", sid=sid, **ids)
    await h.client.post("/token", data=refresh, headers=rid("req-replay"))
    audit.one("refresh.replayed", request_id="req-replay", sid=sid, **ids)
    h.clock.advance(10)
    await h.client.post("/token", data=refresh, headers=rid("req-reuse"))
    reuse = audit.one("refresh.reuse_detected", request_id="req-reuse", sid=sid, **ids)
    assert reuse["level"] == "warning", "expected reuse to stand out"

    again = (await h.login(password=PASSWORD)).json()
    for token, use in ((again["access_token"], "access_token"), (again["refresh_token"], "refresh_token")):
        await h.client.post("/revoke", data={"token": token}, headers=rid(f"req-revoke-{use}"))
    revoked = {e["token_use"]: e for e in audit.events("token.revoked")}
    assert set(revoked) == {"access_token", "refresh_token"}, f"expected both revocations, got {revoked}"
    for use, line in revoked.items():
        assert line["request_id"] == f"req-revoke-{use}"
        assert line["user_id"] == user.id and line["client_id"] == "cli" and isinstance(line["sid"], str)

    m2m = await h.client.post(
        "/token", data={"grant_type": "client_credentials"}, auth=("reports", secret), headers=rid("req-m2m")
    )
    assert m2m.status_code == 200
    routine = audit.events("token.client_credentials")
    assert not routine, f"expected routine client tokens kept out of the audit trail, got {routine}"

    secrets = [PASSWORD, secret, "wrong"]
    for value in (tokens, again):
        for token in (value["access_token"], value["refresh_token"]):
            secrets += [token, *token.split(".")[1:]]
    assert_well_formed(audit.lines, secrets)


async def test_a_generated_request_id_joins_the_response_and_the_audit_line(
    harness: AppHarness, audit: AuditLines
) -> None:
    await harness.add_user()
    response = await harness.login()
    rid = response.headers["x-request-id"]
    assert len(rid) == 16, f"expected a generated request id, got {rid!r}"
    audit.one("login.succeeded", request_id=rid)


# --- key events -------------------------------------------------------------------------------------
async def test_key_events_name_the_kid(harness_factory: Callable[..., Any], audit: AuditLines) -> None:
    h: AppHarness = await harness_factory(signing_alg="EdDSA", key_standby=False)
    store = h.services.key_watcher.store
    old = h.services.keys.signing_key().kid
    audit.one("key.created", kid=old, alg="EdDSA")  # the first key, made at start-up
    audit.lines.clear()
    changes = rotate(store, lifetimes(h.settings), h.clock, "EdDSA", None, force=True)
    new = next(c.kid for c in changes if c.action == "created")
    audit.one("key.created", kid=new)
    revoke_key(store, old, h.clock, "EdDSA", None)
    revoked = audit.one("key.revoked", kid=old)
    assert revoked["level"] == "warning", "expected an emergency revocation to stand out"
    audit.one("key.signing", kid=new)
    assert_well_formed(audit.lines, [])


def test_first_key_event_names_kid_and_alg(tmp_path: Path, audit: AuditLines) -> None:
    change = create_first_key(FileKeyStore(tmp_path / "keys"), "EdDSA", SystemClock(), None)
    assert change is not None
    audit.one("key.created", kid=change.kid, alg="EdDSA")


# --- events from the command line --------------------------------------------------------------------
@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = server_env(tmp_path, signing_alg="EdDSA", key_standby="false")  # one key per change
    for name, value in env.items():
        if name.startswith("AUTHSVC_"):
            monkeypatch.setenv(name, value)
    create_first_key(FileKeyStore(Path(env["AUTHSVC_KEYS_DIR"])), "EdDSA", SystemClock(), None)
    create_database(env)  # as serve or db upgrade would have
    return env


def _invoke(*args: str, input: str | None = None) -> str:
    from authsvc.cli import app

    result = CliRunner().invoke(app, list(args), input=input)
    assert result.exit_code == 0, f"expected `authsvc {' '.join(args)}` to succeed: {result.output}"
    return result.output


def test_cli_events_carry_the_changed_identifiers(cli_env: dict[str, str], audit: AuditLines) -> None:
    _invoke("users", "add", "alice", "--password-stdin", "--scope", "read", input=PASSWORD + "\n")
    user_id = next(
        line.split("\t")[1] for line in _invoke("users", "list").splitlines() if line.startswith("alice")
    )

    _invoke("users", "logout", "alice")
    logout = audit.one("session.logout", user_id=user_id)
    assert logout["count"] == 0
    _invoke("users", "disable", "alice")
    audit.one("user.disabled", user_id=user_id)

    output = _invoke("clients", "add", "reports", "--scope", "read")
    secret = output.strip().rsplit(" ", 1)[-1]
    audit.one("client.added", client_id="reports")
    _invoke("clients", "remove", "reports")
    audit.one("client.removed", client_id="reports")

    before = {line.split("\t")[0] for line in _invoke("keys", "list").splitlines()[1:] if line}
    _invoke("keys", "rotate", "--force")
    created = audit.events("key.created")
    assert len(created) == 1 and created[0]["kid"] not in before, f"expected the new kid, got {created}"
    _invoke("keys", "revoke", created[0]["kid"])
    audit.one("key.revoked", kid=created[0]["kid"])
    assert_well_formed(audit.lines, [PASSWORD, secret])


def test_cli_audit_events_reach_the_process_output(cli_env: dict[str, str]) -> None:
    added = run_cli("users", "add", "alice", "--password-stdin", env=cli_env, input=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    result = run_cli("users", "logout", "alice", env=cli_env)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert any(e.get("event") == "session.logout" for e in events), (
        f"expected a session.logout audit line from the CLI process, stderr was {result.stderr!r}"
    )
