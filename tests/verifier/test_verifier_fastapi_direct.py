"""``install_error_handler`` maps an ``InvalidToken`` a user's own dependency lets escape.

Finding 17 of issue #13: a resource server that calls ``await verifier.verify()``
itself (rather than ``Depends(verifier.require())``) got a 500 for every refused
token. The handler must answer the same RFC 6750 way ``require()`` does, for the
async verifier in an ``async def`` dependency and the sync one in a ``def``
dependency (which FastAPI runs in a worker thread).

No ``from __future__ import annotations`` here: FastAPI must see the route
annotations, which refer to local names, as objects.
"""

from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from verifier_support import FakeClock, JWKSStub, Minter

from authsvc.verifier import SyncVerifier, Verifier
from authsvc.verifier.fastapi import install_error_handler


def _token(request: Request) -> str:
    return request.headers.get("authorization", "").removeprefix("Bearer ").strip()


def build_app(verifier: Verifier | SyncVerifier, **handler_options: Any) -> FastAPI:
    app = FastAPI()
    install_error_handler(app, **handler_options)
    Claims = dict[str, Any]

    if isinstance(verifier, Verifier):

        async def claims_of(request: Request) -> Claims:
            return await verifier.verify(_token(request), scopes=["orders:read"])

    else:

        def claims_of(request: Request) -> Claims:  # a sync dependency: FastAPI runs it in a thread
            return verifier.verify(_token(request), scopes=["orders:read"])

    @app.get("/orders")
    async def orders(claims: Annotated[Claims, Depends(claims_of)]):
        return {"sub": claims["sub"]}

    return app


@pytest.fixture(params=["async", "sync"])
async def make_client(
    request: pytest.FixtureRequest,
    make_verifier: Callable[..., Verifier],
    make_sync_verifier: Callable[..., SyncVerifier],
) -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    clients: list[httpx.AsyncClient] = []

    def build(**handler_options: Any) -> httpx.AsyncClient:
        verifier = make_verifier() if request.param == "async" else make_sync_verifier()
        transport = httpx.ASGITransport(app=build_app(verifier, **handler_options))
        client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        clients.append(client)
        return client

    yield build
    for client in clients:
        await client.aclose()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_valid_token_passes(make_client: Callable[..., httpx.AsyncClient], mint: Minter) -> None:
    response = await make_client().get("/orders", headers=bearer(mint()))
    assert response.status_code == 200
    assert response.json() == {"sub": "user-7f3a"}


@pytest.mark.parametrize(
    ("token_kwargs", "description"),
    [
        ({"exp": 1}, "The access token expired."),
        ({"aud": "someone-else"}, "The access token is not meant for this audience."),
        ({"header": {"typ": "rt+jwt"}}, "The token is not an access token."),
    ],
)
async def test_refused_token_is_401_invalid_token(
    make_client: Callable[..., httpx.AsyncClient],
    mint: Minter,
    token_kwargs: dict[str, Any],
    description: str,
) -> None:
    response = await make_client().get("/orders", headers=bearer(mint(**token_kwargs)))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        f'Bearer realm="authsvc", error="invalid_token", error_description="{description}"'
    )
    assert response.json() == {"error": "invalid_token", "error_description": description}


async def test_garbage_is_401_and_never_echoed(make_client: Callable[..., httpx.AsyncClient]) -> None:
    response = await make_client().get("/orders", headers=bearer("not-a-jwt<zqxj>"))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert "zqxj" not in response.text + response.headers["www-authenticate"]


async def test_missing_scope_is_403_insufficient_scope(
    make_client: Callable[..., httpx.AsyncClient], mint: Minter
) -> None:
    response = await make_client().get("/orders", headers=bearer(mint(scope="profile")))
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == (
        'Bearer realm="authsvc", error="insufficient_scope", '
        'error_description="The access token lacks a required scope.", scope="orders:read"'
    )
    assert response.json()["error"] == "insufficient_scope"


async def test_jwks_unavailable_is_503_with_retry_after(
    make_client: Callable[..., httpx.AsyncClient], jwks: JWKSStub, mint: Minter
) -> None:
    jwks.mode = "down"
    response = await make_client().get("/orders", headers=bearer(mint()))
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert response.headers["retry-after"].isdigit()
    assert "www-authenticate" not in response.headers


async def test_realm_of_the_handler(
    make_client: Callable[..., httpx.AsyncClient], mint: Minter, clock: FakeClock
) -> None:
    response = await make_client(realm="orders").get("/orders", headers=bearer(mint(exp=1)))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer realm="orders", error="invalid_token"')


def test_handler_refuses_a_realm_it_cannot_quote() -> None:
    with pytest.raises(ValueError):
        install_error_handler(FastAPI(), realm='a"b')
