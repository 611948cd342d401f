"""``authsvc clients add|list|remove`` through the real entry point.

The CLI runs on the same SQLite file as an in-process app, so what it
registers is checked over HTTP: a generated secret (printed once, stored as
salted SHA-256), a chosen one (``--secret-stdin``, argon2id), a
private_key_jwt client (``--jwks``), grants, audiences and lifetimes.

The main paths run the installed entry point as a subprocess (``cli``); the
many refusals call the same entry point function in this process
(``local``), which saves a second of interpreter start-up each.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from joserfc.jwk import ECKey, OctKey

from tests.support import AppHarness
from tests.test_cli_users import Cli, assert_ok, assert_one_line_error
from tests.test_client_auth import assert_invalid_client, basic, claims_of, client_token
from tests.test_private_key_jwt import assertion_claims, jwks_of, public_jwk, sign, with_assertion

SECRET_LINE = re.compile(r"^client secret \(shown once, store it now\): ([A-Za-z0-9_-]{43})$", re.MULTILINE)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


class LocalCli:
    """``authsvc.cli_entry.main`` in this process, with the same settings as ``cli``."""

    _lock = threading.Lock()

    def __init__(
        self, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ):
        for name, value in env.items():
            if name.startswith("AUTHSVC_") and not name.startswith("AUTHSVC_TEST_"):
                monkeypatch.setenv(name, value)
        self.monkeypatch = monkeypatch
        self.capsys = capsys

    async def __call__(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(self._run, args, input)

    def _run(self, args: tuple[str, ...], input: str | None) -> subprocess.CompletedProcess[str]:
        from authsvc.cli_entry import main

        with self._lock:
            self.capsys.readouterr()
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(sys, "argv", ["authsvc", *args])
                patch.setattr(sys, "stdin", io.StringIO(input or ""))
                try:
                    main()
                    code = 0
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            out = self.capsys.readouterr()
        return subprocess.CompletedProcess(list(args), code, out.out, out.err)


@pytest.fixture
def local(cli: Cli, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> LocalCli:
    return LocalCli(cli.env, monkeypatch, capsys)


def db_row(tmp_path: Path, client_id: str) -> dict[str, object]:
    with sqlite3.connect(tmp_path / "authsvc.db") as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM clients WHERE client_id = ?", (client_id,)).fetchone()
    assert row is not None
    return dict(row)


async def test_generated_secret_is_printed_once_and_works(
    harness: AppHarness, cli: Cli, local: LocalCli, tmp_path: Path
) -> None:
    added = await cli(
        "clients", "add", "svc", "--scope", "read write", "--audience", "api", "--access-token-ttl", "60"
    )
    assert_ok(added)
    found = SECRET_LINE.findall(added.stdout)
    assert len(found) == 1, added.stdout
    secret = found[0]
    assert added.stdout.count(secret) == 1
    assert secret not in added.stderr

    row = db_row(tmp_path, "svc")
    assert re.fullmatch(r"sha256\$[0-9a-f]{32}\$[0-9a-f]{64}", str(row["secret_hash"]))
    assert secret.encode() not in (tmp_path / "authsvc.db").read_bytes()
    assert (row["client_type"], row["grant_types"], row["audiences"]) == (
        "confidential",
        "client_credentials",
        "api",
    )

    response = await client_token(harness, basic("svc", secret))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["expires_in"], body["scope"]) == (60, "read write")
    assert claims_of(body["access_token"])["aud"] == "api"

    listed = await local("clients", "list")
    assert_ok(listed)
    # id, kind, grants, scopes, audiences; then redirect URIs and flags
    svc = r"^svc\tconfidential\tclient_credentials\tread write\tapi\t-\tttl=60$"
    assert re.search(svc, listed.stdout, re.M)
    assert re.search(r"^cli\tpublic\tpassword refresh_token\t", listed.stdout, re.M)
    assert secret not in listed.stdout + listed.stderr


async def test_secret_stdin_is_stored_with_argon2id(harness: AppHarness, cli: Cli, tmp_path: Path) -> None:
    chosen = "an operator-chosen secret: ü%+"
    added = await cli("clients", "add", "chosen", "--secret-stdin", input=chosen + "\n")
    assert_ok(added)
    assert "client secret" not in added.stdout
    assert chosen not in added.stdout + added.stderr
    assert str(db_row(tmp_path, "chosen")["secret_hash"]).startswith("$argon2id$")
    assert chosen.encode() not in (tmp_path / "authsvc.db").read_bytes()
    response = await client_token(harness, basic("chosen", chosen))
    assert response.status_code == 200, response.text
    # Default audience when none is named: whatever AUTHSVC_DEFAULT_AUDIENCE is at issue time.
    assert claims_of(response.json()["access_token"])["aud"] == "authsvc"
    response = await client_token(harness, {}, client_id="chosen", client_secret=chosen)
    assert response.status_code == 200
    assert_invalid_client(await client_token(harness, basic("chosen", chosen + "\n")))


async def test_jwks_file_registers_a_private_key_jwt_client(
    harness: AppHarness, cli: Cli, local: LocalCli, tmp_path: Path
) -> None:
    key = ECKey.generate_key("P-256")
    good = tmp_path / "public.json"
    good.write_text(jwks_of(public_jwk(key, "k1", "ES256")))
    private = tmp_path / "private.json"
    private.write_text(json.dumps({"keys": [{**key.as_dict(private=True), "kid": "k1"}]}))
    symmetric = tmp_path / "oct.json"
    symmetric.write_text(json.dumps({"keys": [OctKey.generate_key(256).as_dict()]}))
    encryption_only = tmp_path / "enc.json"
    encryption_only.write_text(jwks_of(public_jwk(key, "k1", use="enc")))
    mismatched = tmp_path / "mismatched.json"
    mismatched.write_text(jwks_of(public_jwk(key, "k1", "RS256")))  # an EC key cannot verify RS256
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")

    added = await cli("clients", "add", "jwt-svc", "--jwks", str(good), "--scope", "read")
    assert_ok(added)
    assert "client secret" not in added.stdout
    row = db_row(tmp_path, "jwt-svc")
    assert row["secret_hash"] is None
    assert row["jwks"]
    response = await with_assertion(harness, sign(key, "ES256", assertion_claims(harness.clock.now())))
    assert response.status_code == 200, response.text

    refused = [
        await local("clients", "add", f"bad-{n}", "--jwks", str(path))
        for n, path in enumerate(
            (private, symmetric, encryption_only, mismatched, garbage, tmp_path / "missing.json")
        )
    ]
    for result in refused:
        assert_one_line_error(result)
    assert "PRIVATE" not in "".join(r.stderr for r in refused)
    assert key.as_dict(private=True)["d"] not in "".join(r.stderr for r in refused)


async def test_password_grant_only_when_asked_for(harness: AppHarness, local: LocalCli) -> None:
    await harness.add_user()
    default = await local("clients", "add", "web")
    assert_ok(default)
    explicit = await local("clients", "add", "web2", "--grant", "password", "--grant", "refresh_token")
    assert_ok(explicit)
    public = await local("clients", "add", "spa", "--public")
    assert_ok(public)
    web = SECRET_LINE.findall(default.stdout)[0]
    web2 = SECRET_LINE.findall(explicit.stdout)[0]
    assert "client secret" not in public.stdout

    response = await harness.login(client_id="web", client_secret=web)
    assert (response.status_code, response.json()["error"]) == (400, "unauthorized_client")
    response = await harness.login(client_id="spa")
    assert (response.status_code, response.json()["error"]) == (400, "unauthorized_client")
    response = await harness.login(client_id="web2", client_secret=web2)
    assert response.status_code == 200, response.text
    assert "refresh_token" in response.json()
    response = await client_token(harness, basic("web2", web2))  # password + refresh only
    assert (response.status_code, response.json()["error"]) == (400, "unauthorized_client")


async def test_refused_adds_are_one_line_exit_1(harness: AppHarness, cli: Cli, local: LocalCli) -> None:
    user = await harness.add_user("alice")
    assert_ok(await local("clients", "add", "svc"))
    assert_one_line_error(await cli("clients", "add", "alice"))  # an existing user name
    results = [
        await local("clients", "add", "alice"),
        await local("clients", "add", user.id),  # an existing user id: a client token's sub
        await local("clients", "add", "svc"),  # duplicate
        await local("clients", "add", "cli"),  # the built-in default client
        await local("clients", "add", "short", "--secret-stdin", input="too short\n"),
        await local("clients", "add", "empty", "--secret-stdin", input=""),
        await local("clients", "add", "both", "--public", "--secret-stdin", input="x" * 20 + "\n"),
        await local("clients", "add", "pub-cc", "--public", "--grant", "client_credentials"),
        await local("clients", "add", "weird", "--grant", "implicit"),
        await local("clients", "add", "spaced id"),
        await local("clients", "add", "bad-scope", "--scope", 'a"b'),
        await local("clients", "add", "bad-aud", "--audience", "ü"),
    ]
    for result in results:
        assert_one_line_error(result)
    listed = await local("clients", "list")
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == ["cli", "svc"]


async def test_remove_then_the_client_cannot_authenticate(
    harness: AppHarness, cli: Cli, local: LocalCli
) -> None:
    added = await local("clients", "add", "svc")
    secret = SECRET_LINE.findall(added.stdout)[0]
    assert (await client_token(harness, basic("svc", secret))).status_code == 200
    removed = await cli("clients", "remove", "svc")
    assert_ok(removed)
    assert_invalid_client(await client_token(harness, basic("svc", secret)))
    assert_one_line_error(await local("clients", "remove", "svc"))
    assert_one_line_error(await local("clients", "remove", "cli"))  # the built-in one stays


async def test_usage_errors_exit_2(local: LocalCli) -> None:
    results = [
        await local("clients", "add", "svc", "--bogus"),
        await local("clients", "add"),
        await local("clients", "add", "svc", "--access-token-ttl", "0"),
        await local("clients", "add", "svc", "--access-token-ttl", "soon"),
        await local("clients", "remove"),
    ]
    for result in results:
        assert result.returncode == 2, (result.stdout, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr
