"""``authsvc clients update`` and ``clients rotate-secret`` through the real entry point.

The CLI runs as a child process on the database of an in-process app (SQLite
and PostgreSQL), and what it changed is checked over HTTP: an update reaches
the token endpoint within the client cache time (half a second) and touches
only the options given; a rotated secret works at once, its predecessor for
the ``--overlap`` only (a live server and the real clock for the overlap's
end). Refusals are one line, exit 1, and change nothing.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from authsvc.clients import ClientDirectory
from tests.support import AppHarness, claims_of
from tests.test_cli_clients import LocalCli
from tests.test_client_auth import assert_invalid_client, basic
from tests.trust_support import (
    assert_one_line_error,
    cli_env,
    cli_ok,
    client_secret,
    live_servers,
    run_cli_async,
)

Env = dict[str, str]


@pytest.fixture
async def app_and_cli(
    harness_factory: Callable[..., Any], database_url: str, tmp_path: Path
) -> tuple[AppHarness, Env]:
    """The ASGI app and the CLI's settings on one database (SQLite, then PostgreSQL)."""
    harness = await harness_factory(database_url=database_url)
    return harness, cli_env(tmp_path, database_url=database_url)


async def cli(env: Env, *args: str, input: str | None = None) -> tuple[int, str, str]:
    return await run_cli_async(*args, env=env, input=input)


async def ok(env: Env, *args: str) -> str:
    code, out, err = await cli(env, *args)
    assert code == 0, (args, out, err)
    return out


@pytest.fixture
def local(
    app_and_cli: tuple[AppHarness, Env], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> LocalCli:
    """The same entry point in this process (the many refusals: no interpreter start-up each)."""
    return LocalCli(app_and_cli[1], monkeypatch, capsys)


async def refused(local: LocalCli, *args: str) -> None:
    assert_one_line_error(await local(*args))


def usage_error(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result


def audit_lines(stderr: str, event: str) -> list[dict[str, Any]]:
    """The CLI's JSON audit lines (on stderr) of one event."""
    found = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == event:
                found.append(record)
    return found


async def token(h: AppHarness, client_id: str, secret: str, **form: str) -> httpx.Response:
    return await h.client.post(
        "/token", data={"grant_type": "client_credentials", **form}, headers=basic(client_id, secret)
    )


async def after_cache() -> None:
    """Every process sees a registry change within the client cache time."""
    await asyncio.sleep(ClientDirectory.CACHE_TTL + 0.05)


def listed(out: str, client_id: str) -> list[str]:
    lines = [line.split("\t") for line in out.splitlines() if line.split("\t")[0] == client_id]
    assert len(lines) == 1, out
    return lines[0]


# --- update ----------------------------------------------------------------------------------
async def test_update_reaches_new_tokens_and_changes_only_what_is_given(
    app_and_cli: tuple[AppHarness, Env],
) -> None:
    h, env = app_and_cli
    secret = client_secret(await ok(env, "clients", "add", "svc", "--scope", "read", "--audience", "api"))
    first = await token(h, "svc", secret)
    assert first.status_code == 200, first.text
    assert first.json()["scope"] == "read"
    assert (await token(h, "svc", secret, scope="write")).json()["error"] == "invalid_scope"

    code, out, err = await cli(
        env, "clients", "update", "svc", "--scope", "read write", "--access-token-ttl", "60"
    )
    assert code == 0, err
    assert "client secret" not in out
    (event,) = audit_lines(err, "client.updated")
    assert event["client_id"] == "svc"
    assert set(event["changed"].split()) == {"scopes", "access_token_ttl"}
    await after_cache()

    response = await token(h, "svc", secret)  # the secret is untouched
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["scope"], body["expires_in"]) == ("read write", 60)
    assert claims_of(body["access_token"])["aud"] == "api"  # not given: kept
    assert (await token(h, "svc", secret, scope="write")).status_code == 200

    # A list option replaces the list; one empty value empties it (the default audience again).
    await ok(env, "clients", "update", "svc", "--audience", "")
    await after_cache()
    response = await token(h, "svc", secret)
    assert claims_of(response.json()["access_token"])["aud"] == h.settings.default_audience
    row = listed(await ok(env, "clients", "list"), "svc")
    assert row[:5] == ["svc", "confidential", "client_credentials", "read write", "(default audience)"]
    assert row[5:] == ["-", "ttl=60"]


async def test_update_browser_options_and_flags(app_and_cli: tuple[AppHarness, Env]) -> None:
    h, env = app_and_cli
    await ok(env, "clients", "add", "spa", "--public")
    await ok(
        env,
        "clients",
        "update",
        "spa",
        "--grant",
        "authorization_code",
        "--grant",
        "refresh_token",
        "--redirect-uri",
        "https://app.example/cb",
        "--redirect-uri",
        "http://127.0.0.1/cb",
        "--post-logout-redirect-uri",
        "https://app.example/bye",
        "--web-origin",
        "https://app.example",
        "--first-party",
        "--require-dpop",
    )
    row = listed(await ok(env, "clients", "list"), "spa")
    assert row[:3] == ["spa", "public", "authorization_code refresh_token"]
    assert row[5] == "https://app.example/cb http://127.0.0.1/cb"
    assert row[6].split() == [
        "first-party",
        "require-dpop",
        "logout=https://app.example/bye",
        "origin=https://app.example",
    ]
    await after_cache()
    client = await h.services.clients.get("spa")
    assert client is not None and client.first_party and client.require_dpop and client.public

    await ok(env, "clients", "update", "spa", "--no-first-party", "--no-require-dpop", "--require-par")
    row = listed(await ok(env, "clients", "list"), "spa")
    assert row[5] == "https://app.example/cb http://127.0.0.1/cb"  # kept
    assert row[6].split()[0] == "require-par"


async def test_refused_updates_are_one_line_and_change_nothing(
    app_and_cli: tuple[AppHarness, Env], local: LocalCli, tmp_path: Path
) -> None:
    h, _env = app_and_cli
    secret = client_secret((await local("clients", "add", "svc", "--scope", "read")).stdout)
    assert (await local("clients", "add", "spa", "--public")).returncode == 0
    before = (await local("clients", "list")).stdout
    jwks = tmp_path / "public.json"
    jwks.write_text('{"keys": []}')
    for args in (
        ("nobody", "--scope", "read"),  # unknown client
        ("cli", "--scope", "read"),  # the built-in default client is not registered
        ("svc", "--grant", "implicit"),
        ("svc", "--scope", 'a"b'),
        ("svc", "--audience", "ü"),
        ("svc", "--redirect-uri", "https://app.example/cb"),  # browser options need authorization_code
        ("svc", "--grant", "authorization_code"),  # ... which needs a redirect URI
        ("svc", "--first-party"),
        ("svc", "--jwks", str(jwks)),  # not a usable JWKS
        ("svc", "--jwks", str(tmp_path / "missing.json")),
        ("svc", "--jwks-uri", "http://keys.example/jwks.json"),  # http off loopback
        ("svc", "--jwks-uri", "https://keys.example/jwks.json#frag"),
        ("svc", "--jwks-uri", "https://user:pw@keys.example/jwks.json"),
        ("svc", "--jwks-uri", "ftp://keys.example/jwks.json"),
        ("svc", "--jwks-uri", "https://[::1/jwks.json"),
        ("spa", "--grant", "client_credentials"),  # a public client
        ("spa", "--jwks-uri", "https://keys.example/jwks.json"),  # a public client has no keys
    ):
        await refused(local, "clients", "update", *args)
    await refused(
        local, "clients", "update", "svc", "--jwks-uri", "https://keys.example/k", "--jwks", str(jwks)
    )
    usage_error(await local("clients", "update", "svc"))  # nothing to change
    usage_error(await local("clients", "update", "svc", "--access-token-ttl", "0"))
    assert (await local("clients", "list")).stdout == before
    await after_cache()
    assert (await token(h, "svc", secret)).json()["scope"] == "read"


async def test_add_takes_a_jwks_uri(app_and_cli: tuple[AppHarness, Env], local: LocalCli) -> None:
    out = (await local("clients", "add", "partner", "--jwks-uri", "https://partner.example/jwks.json")).stdout
    assert out.startswith("added private_key_jwt client partner")
    assert "client secret" not in out
    row = listed((await local("clients", "list")).stdout, "partner")
    assert row[1] == "private_key_jwt"
    assert row[6] == "jwks-uri=https://partner.example/jwks.json"
    for args in (
        ("p2", "--jwks-uri", "http://partner.example/jwks.json"),
        ("p3", "--public", "--jwks-uri", "https://partner.example/jwks.json"),
        ("p4", "--jwks-uri", "not a url"),
    ):
        await refused(local, "clients", "add", *args)
    await refused(
        local, "clients", "add", "p5", "--secret-stdin", "--jwks-uri", "https://partner.example/jwks.json"
    )


# --- rotate-secret ---------------------------------------------------------------------------
async def test_rotation_without_overlap_ends_the_old_secret_at_once(
    app_and_cli: tuple[AppHarness, Env],
) -> None:
    h, env = app_and_cli
    old = client_secret(await ok(env, "clients", "add", "svc"))
    assert (await token(h, "svc", old)).status_code == 200
    code, out, err = await cli(env, "clients", "rotate-secret", "svc")
    assert code == 0, err
    new = client_secret(out)
    assert new != old and out.count(new) == 1 and new not in err
    assert out.strip().splitlines()[-1].endswith(new)  # the secret is the last line, as for add
    (event,) = audit_lines(err, "client.secret_rotated")
    assert (event["client_id"], event["overlap"]) == ("svc", 0)
    await after_cache()
    assert_invalid_client(await token(h, "svc", old))
    assert (await token(h, "svc", new)).status_code == 200
    assert listed(await ok(env, "clients", "list"), "svc")[6] == "-"


async def test_rotation_refusals(
    app_and_cli: tuple[AppHarness, Env], local: LocalCli, tmp_path: Path
) -> None:
    from joserfc.jwk import ECKey

    from tests.test_private_key_jwt import jwks_of, public_jwk

    jwks = tmp_path / "public.json"
    jwks.write_text(jwks_of(public_jwk(ECKey.generate_key("P-256"), "k1")))
    for args in (
        ("spa", "--public"),
        ("jwt-svc", "--jwks", str(jwks)),
        ("uri-svc", "--jwks-uri", "https://partner.example/jwks.json"),
        ("svc",),
    ):
        assert (await local("clients", "add", *args)).returncode == 0
    before = (await local("clients", "list")).stdout
    for client_id in ("spa", "jwt-svc", "uri-svc", "nobody", "cli"):
        await refused(local, "clients", "rotate-secret", client_id)
    for overlap in ("-1", "soon", str(31 * 86400)):
        usage_error(await local("clients", "rotate-secret", "svc", "--overlap", overlap))
    assert (await local("clients", "list")).stdout == before


async def test_rotation_overlap_on_a_live_server(tmp_path: Path, database_url: str) -> None:
    """Both secrets inside the overlap, only the new one after it: real processes, the real clock."""
    with live_servers(tmp_path, database_url=database_url) as (server,):
        env = server.env
        old = client_secret(await asyncio.to_thread(cli_ok, env, "clients", "add", "svc"))
        async with httpx.AsyncClient(base_url=server.url) as http:

            async def status(secret: str) -> int:
                form = {"grant_type": "client_credentials"}
                return (await http.post("/token", data=form, headers=basic("svc", secret))).status_code

            assert await status(old) == 200
            overlap = 6
            started = time.time()  # the overlap ends between started + overlap and returned + overlap
            out = await asyncio.to_thread(
                cli_ok, env, "clients", "rotate-secret", "svc", "--overlap", str(overlap)
            )
            returned = time.time()
            new = client_secret(out)
            assert "the previous one works until" in out
            # The CLI's own start-up took more than the client cache time: the server sees the change.
            assert (await status(new), await status(old)) == (200, 200)
            assert time.time() < started + overlap, "the machine is too slow for this overlap"
            assert "previous-secret-until=" in await asyncio.to_thread(cli_ok, env, "clients", "list")
            await asyncio.sleep(max(0.0, returned + overlap + ClientDirectory.CACHE_TTL + 0.5 - time.time()))
            assert (await status(new), await status(old)) == (200, 401)
            # Rotated again without an overlap: its predecessor ends at once.
            newer = client_secret(await asyncio.to_thread(cli_ok, env, "clients", "rotate-secret", "svc"))
            await after_cache()
            assert (await status(newer), await status(new)) == (200, 401)
