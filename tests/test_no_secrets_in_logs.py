"""No secret reaches a log record, at DEBUG, on any logger, in any field.

A full flow runs with the root logger at DEBUG (as an operator chasing a
problem would set it): logins good and bad, refreshes (with the grace replay
and a reuse), revocations, client credentials with a right and a wrong
secret, introspection, a database outage, key rotation and an emergency key
revocation. Then every captured record is searched — its message, its
arguments, every extra attribute, its traceback — and so is the text the
JSON audit formatter and a plain formatter produced from it, for passwords,
client secrets, password and secret hashes, whole tokens, the payload and
signature segments of every token, and each body line of every private key.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from authsvc.client_secrets import generate_secret, hash_generated
from authsvc.keys.rotation import revoke_key, rotate
from authsvc.keys.setup import lifetimes
from authsvc.logs import AuditJsonFormatter
from authsvc.store.records import Client
from tests.support import AppHarness
from tests.test_fault_injection import Outage

PASSWORD = "correct horse battery staple 7Q"
WRONG_PASSWORD = "wrong-password-Zebra9-guess"
CLIENT_ID = "reports"


class Capture(logging.Handler):
    """Keeps every record and its formatted text (JSON for audit events, plain for the rest)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []
        self.plain = logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
        self.audit = AuditJsonFormatter()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.plain.format(record))
        if record.name == "authsvc.audit":
            self.lines.append(self.audit.format(record))


@pytest.fixture
def capture(caplog: pytest.LogCaptureFixture) -> Iterator[Capture]:
    caplog.set_level(logging.DEBUG)
    handler = Capture()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


class Secrets:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def add(self, label: str, value: str) -> None:
        if value:
            self.values[label] = value

    def token(self, label: str, token: str) -> None:
        _header, payload, signature = token.split(".")
        self.add(f"{label} (whole)", token)
        self.add(f"{label} payload segment", payload)
        self.add(f"{label} signature segment", signature)
        # A segment quoted in part is still a leak: its first 24 characters are enough to find.
        self.add(f"{label} signature prefix", signature[:24])
        self.add(f"{label} payload tail", payload[-24:])

    def private_keys(self, directory: Path) -> None:
        for pem in directory.glob("*.pem"):
            for n, line in enumerate(pem.read_text().splitlines()):
                if line and not line.startswith("-----"):
                    self.add(f"private key {pem.stem} line {n}", line)
            body = "".join(pem.read_text().splitlines()[1:-1])
            self.add(f"private key {pem.stem} DER", base64.b64decode(body).hex()[:64])


def _texts(record: logging.LogRecord, capture: Capture) -> Iterator[tuple[str, str]]:
    where = f"{record.name}:{record.lineno}"
    yield where + " message", record.getMessage()
    yield where + " msg", str(record.msg)
    yield where + " args", repr(record.args)
    for name, value in vars(record).items():
        if name not in ("msg", "args", "message"):
            yield f"{where} .{name}", repr(value)
    if record.exc_info:
        yield where + " traceback", capture.plain.formatException(record.exc_info)


async def test_a_full_flow_at_debug_logs_no_secret(
    harness_factory: Callable[..., Any], capture: Capture, caplog: pytest.LogCaptureFixture
) -> None:
    h: AppHarness = await harness_factory(refresh_reuse_grace=10, login_max_per_user=3)
    secrets = Secrets()
    user = await h.add_user(password=PASSWORD)
    secrets.add("password", PASSWORD)
    secrets.add("wrong password", WRONG_PASSWORD)
    secrets.add("password hash", user.password_hash)
    client_secret = generate_secret()
    wrong_secret = generate_secret()
    secret_hash = hash_generated(client_secret)
    for label, value in (("client secret", client_secret), ("wrong secret", wrong_secret)):
        secrets.add(label, value)
    secrets.add("client secret hash", secret_hash.split("$")[-1])
    await h.services.clients.store.add(
        Client(
            id=CLIENT_ID,
            public=False,
            grant_types=frozenset({"client_credentials"}),
            scopes=frozenset({"read"}),
            audiences=("orders-api",),
            secret_hash=secret_hash,
        ),
        h.clock.now(),
    )
    secrets.private_keys(h.settings.keys_dir)
    basic = (CLIENT_ID, client_secret)

    # logins and refreshes
    login = await h.login(password=PASSWORD)
    assert login.status_code == 200
    first = login.json()
    secrets.token("access token", first["access_token"])
    secrets.token("refresh token", first["refresh_token"])
    assert (await h.login(password=WRONG_PASSWORD)).status_code == 400
    second = await h.refresh(first["refresh_token"])
    assert second.status_code == 200
    replay = await h.refresh(first["refresh_token"])  # inside the grace: the stored body again
    assert replay.content == second.content
    secrets.token("refreshed access token", second.json()["access_token"])
    secrets.token("refreshed refresh token", second.json()["refresh_token"])
    third = (await h.refresh(second.json()["refresh_token"])).json()
    secrets.token("third access token", third["access_token"])
    secrets.token("third refresh token", third["refresh_token"])
    h.clock.advance(30)  # past the grace: replaying the first token is reuse
    assert (await h.refresh(first["refresh_token"])).json()["error"] == "invalid_grant"
    tampered = first["refresh_token"][:-4] + "AAAA"
    assert (await h.refresh(tampered)).status_code == 400

    # clients, introspection, revocation
    m2m = await h.client.post("/token", data={"grant_type": "client_credentials"}, auth=basic)
    assert m2m.status_code == 200
    secrets.token("client access token", m2m.json()["access_token"])
    post = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": client_secret}
    assert (await h.client.post("/token", data=post)).status_code == 200
    bad = await h.client.post(
        "/token", data={"grant_type": "client_credentials"}, auth=(CLIENT_ID, wrong_secret)
    )
    assert bad.status_code == 401
    again = (await h.login(password=PASSWORD)).json()
    secrets.token("second session access token", again["access_token"])
    secrets.token("second session refresh token", again["refresh_token"])
    for token in (again["access_token"], again["refresh_token"], m2m.json()["access_token"]):
        assert (await h.client.post("/introspect", data={"token": token}, auth=basic)).status_code == 200
    assert (await h.me(again["access_token"])).status_code == 200
    for token in (again["access_token"], again["refresh_token"]):
        assert (await h.client.post("/revoke", data={"token": token})).status_code == 200
    assert (await h.me(again["access_token"])).status_code == 401
    await h.add_user("bob", PASSWORD, email=None, full_name=None)
    for _ in range(4):  # into the login limits
        await h.login("bob", WRONG_PASSWORD)

    # a database outage (its errors carry SQL parameters)
    outage = Outage(h.services)
    try:
        await outage.start()
        assert (await h.login(password=PASSWORD)).status_code == 503
        assert (
            await h.client.post("/introspect", data={"token": third["access_token"]}, auth=basic)
        ).status_code == 503
    finally:
        outage.stop()
        outage.remove()

    # keys: a forced rotation, the successor's turn, an emergency revocation
    store = h.services.key_watcher.store
    rotate(store, lifetimes(h.settings), h.clock, h.settings.signing_alg, None, force=True)
    secrets.private_keys(h.settings.keys_dir)
    h.clock.advance(h.settings.key_prepublish + 5)
    h.services.key_watcher.load()
    late = (await h.login(password=PASSWORD)).json()
    secrets.token("post-rotation access token", late["access_token"])
    secrets.token("post-rotation refresh token", late["refresh_token"])
    signing = h.services.keys.signing_key().kid
    revoke_key(h.services.key_watcher.store, signing, h.clock, h.settings.signing_alg, None)
    secrets.private_keys(h.settings.keys_dir)
    h.services.key_watcher.load()
    assert (await h.refresh(late["refresh_token"])).status_code == 400

    assert len(capture.records) > 30, "expected the flow to have logged (is logging captured at all?)"
    assert any(r.name == "authsvc.audit" for r in capture.records), "expected audit events captured"
    assert len(secrets.values) > 60, "expected every token, key line and secret collected"
    leaks = _leaks(capture, caplog.records, secrets)
    assert not leaks, "expected no secret in any log record; found:\n" + "\n".join(sorted(set(leaks)))

    # The search itself works: a token planted in an extra field is found.
    planted = logging.LogRecord("x", logging.DEBUG, __file__, 1, "m", None, None)
    planted.body = {"refresh_token": late["refresh_token"]}
    capture.records.append(planted)
    assert _leaks(capture, [], secrets), "expected the search to find a planted token"


def _leaks(capture: Capture, extra: list[logging.LogRecord], secrets: Secrets) -> list[str]:
    found = []
    for record in capture.records:
        for where, text in _texts(record, capture):
            found += [f"{label} in {where}" for label, value in secrets.values.items() if value in text]
    for line in capture.lines:
        found += [
            f"{label} in line {line[:80]!r}" for label, value in secrets.values.items() if value in line
        ]
    for record in extra:  # pytest's own capture saw the same records
        message = record.getMessage()
        found += [
            f"{label} in caplog {record.name}" for label, value in secrets.values.items() if value in message
        ]
    return found


def test_the_json_formatter_scrubs_a_token_that_slipped_into_a_message() -> None:
    """Defence in depth: a token or PEM block in an audit message is cut out of the JSON line."""
    token = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA\n-----END PRIVATE KEY-----"
    record = logging.LogRecord(
        "authsvc.audit", logging.INFO, __file__, 1, "got %s and %s", (token, pem), None
    )
    line = AuditJsonFormatter().format(record)
    assert "c2lnbmF0dXJl" not in line and "MC4CAQAwBQYDK2VwBCIEIA" not in line, line
    assert "[token redacted]" in line and "[key redacted]" in line


def test_leaky_library_loggers_stay_quiet_under_a_debug_root(caplog: pytest.LogCaptureFixture) -> None:
    from authsvc.logs import quiet_leaky_loggers

    caplog.set_level(logging.DEBUG)
    quiet_leaky_loggers()
    for name in ("sqlalchemy.engine", "aiosqlite", "asyncpg", "httpcore"):
        logger = logging.getLogger(name)
        assert not logger.isEnabledFor(logging.INFO), (
            f"expected {name} (SQL and parameters) quiet below WARNING"
        )
