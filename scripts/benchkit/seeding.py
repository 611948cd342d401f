"""The state a load run needs in authsvc: a user and a client, login families, a warm server.

The user and the client are made through the CLI, as an operator would; logins
and warm-up go through HTTP. Every refresh token handed to the generator is
live and unspent: each family is refreshed once in the warm-up and its newest
token kept.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from benchkit.config import PASSWORD, SCOPES
from benchkit.servers import Proc, basic_auth, run_cli

__all__ = ["AuthsvcServer", "form_headers", "jwks_etag", "login_body", "logins", "seed", "warm"]

_SECRET_LINE = re.compile(r"client secret \(shown once, store it now\): (\S+)")


@dataclass
class AuthsvcServer:
    proc: Proc
    alg: str
    workdir: Path
    env: dict[str, str]
    username: str
    client_id: str
    secret: str

    @property
    def url(self) -> str:
        return self.proc.url

    @property
    def basic(self) -> str:
        return basic_auth(self.client_id, self.secret)


def seed(proc: Proc, alg: str, workdir: Path, env: dict[str, str], run_id: str) -> AuthsvcServer:
    """One user and one confidential client, through the CLI (as an operator would)."""
    tag = workdir.name.replace("_", "-").lower()
    # Lower case already: authsvc stores the PRECIS-mapped name, and the filler looks it up.
    username = f"bench-{tag}-{run_id}"
    client_id = f"bench-client-{tag}-{run_id}"
    run_cli(
        env,
        workdir,
        "users",
        "add",
        username,
        "--password-stdin",
        "--scope",
        SCOPES,
        "--email",
        "bench@example.com",
        "--full-name",
        "Bench User",
        stdin=PASSWORD + "\n",
    )
    out = run_cli(
        env,
        workdir,
        "clients",
        "add",
        client_id,
        "--scope",
        SCOPES,
        "--grant",
        "password",
        "--grant",
        "refresh_token",
        "--grant",
        "client_credentials",
    )
    match = _SECRET_LINE.search(out)
    if match is None:
        raise RuntimeError(f"clients add printed no secret: {out!r}")
    return AuthsvcServer(proc, alg, workdir, env, username, client_id, match.group(1))


def form_headers(server: AuthsvcServer) -> dict[str, str]:
    return {"Authorization": server.basic, "Content-Type": "application/x-www-form-urlencoded"}


def login_body(server: AuthsvcServer) -> str:
    return (
        f"grant_type=password&username={quote(server.username)}&password={quote(PASSWORD)}"
        f"&scope={quote(SCOPES)}"
    )


def logins(server: AuthsvcServer, count: int) -> list[dict[str, Any]]:
    """``count`` password logins (each opens a refresh-token family)."""
    return asyncio.run(_logins(server, count))


async def _logins(server: AuthsvcServer, count: int) -> list[dict[str, Any]]:
    import httpx

    headers = form_headers(server)
    body = login_body(server)
    results: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        gate = asyncio.Semaphore(8)

        async def one() -> None:
            async with gate:
                response = await client.post("/token", content=body, headers=headers)
            if response.status_code != 200:
                raise RuntimeError(f"login failed: {response.status_code} {response.text[:200]}")
            results.append(response.json())

        await asyncio.gather(*(one() for _ in range(count)))
    return results


def warm(server: AuthsvcServer, families: list[dict[str, Any]], requests: int) -> list[str]:
    """``requests`` of each kind; each family is refreshed once. Returns the live refresh tokens."""
    return asyncio.run(_warm(server, families, requests))


async def _warm(server: AuthsvcServer, families: list[dict[str, Any]], requests: int) -> list[str]:
    import httpx

    form = form_headers(server)
    bearer = {"Authorization": f"Bearer {families[0]['access_token']}"}
    live: list[str] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        for _ in range(requests):
            for response in (
                await client.get("/.well-known/jwks.json"),
                await client.get("/users/me", headers=bearer),
                await client.post("/token", content="grant_type=client_credentials", headers=form),
            ):
                if response.status_code != 200:
                    raise RuntimeError(f"warm-up: {response.status_code} {response.text[:200]}")
        for family in families:
            response = await client.post(
                "/token",
                content=f"grant_type=refresh_token&refresh_token={family['refresh_token']}",
                headers=form,
            )
            if response.status_code != 200:
                raise RuntimeError(f"warm-up refresh: {response.status_code} {response.text[:200]}")
            live.append(response.json()["refresh_token"])
    return live


def jwks_etag(server: AuthsvcServer) -> tuple[bytes, str]:
    """The JWKS body and its ETag (checked: If-None-Match gets 304)."""
    import httpx

    with httpx.Client(base_url=server.url, timeout=10) as client:
        response = client.get("/.well-known/jwks.json")
        etag = response.headers["etag"]
        again = client.get("/.well-known/jwks.json", headers={"If-None-Match": etag})
    if response.status_code != 200 or again.status_code != 304:
        raise RuntimeError(f"JWKS: {response.status_code}, then {again.status_code} on If-None-Match")
    return response.content, etag
