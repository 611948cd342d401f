"""The FastAPI dependency: RFC 6750 challenges and bodies, header-only tokens.

No ``from __future__ import annotations`` here: FastAPI must see the route
annotations, which refer to local names, as objects.
"""

from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from verifier_support import FakeClock, JWKSStub, Minter

from authsvc.verifier import Verifier
from authsvc.verifier.fastapi import install_error_handler


def build_app(verifier: Verifier, *, handler: bool = True, realm: str = "authsvc") -> FastAPI:
    app = FastAPI()
    if handler:
        install_error_handler(app)
    Claims = dict[str, Any]

    @app.get("/orders")
    async def orders(
        claims: Annotated[Claims, Depends(verifier.require(scopes=["orders:read"], realm=realm))],
    ):
        return {"sub": claims["sub"], "orders": []}

    @app.get("/whoami")
    async def whoami(claims: Annotated[Claims, Depends(verifier.require())]):
        return {"sub": claims["sub"]}

    return app


@pytest.fixture
async def client(verifier: Verifier) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(verifier))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_valid_token_returns_claims(client: httpx.AsyncClient, mint: Minter) -> None:
    response = await client.get("/orders", headers=bearer(mint()))
    assert response.status_code == 200
    assert response.json() == {"sub": "user-7f3a", "orders": []}
    response = await client.get("/whoami", headers={"Authorization": f"bearer {mint(scope='')}"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Token abc"},
        {"Authorization": "Bearertoken"},
    ],
)
async def test_no_bearer_credentials(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await client.get("/whoami", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="authsvc"'
    assert response.json()["error"] == "invalid_request"


async def test_token_in_query_string_is_ignored(client: httpx.AsyncClient, mint: Minter) -> None:
    response = await client.get("/whoami", params={"access_token": mint()})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="authsvc"'


async def test_token_in_form_body_is_ignored(client: httpx.AsyncClient, mint: Minter) -> None:
    response = await client.request("GET", "/whoami", data={"access_token": mint()})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("token_kwargs", "description"),
    [
        ({"exp": 1}, "The access token expired."),
        ({"aud": "someone-else"}, "The access token is not meant for this audience."),
        ({"header": {"typ": "rt+jwt"}}, "The token is not an access token."),
    ],
)
async def test_invalid_token(
    client: httpx.AsyncClient, mint: Minter, token_kwargs: dict[str, Any], description: str
) -> None:
    response = await client.get("/whoami", headers=bearer(mint(**token_kwargs)))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        f'Bearer realm="authsvc", error="invalid_token", error_description="{description}"'
    )
    assert response.json() == {"error": "invalid_token", "error_description": description}


async def test_garbage_token_never_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/whoami", headers=bearer("not-a-jwt<zqxj>"))
    assert response.status_code == 401
    assert "zqxj" not in response.text
    assert "zqxj" not in response.headers["www-authenticate"]
    assert response.json()["error"] == "invalid_token"


async def test_insufficient_scope(client: httpx.AsyncClient, mint: Minter) -> None:
    response = await client.get("/orders", headers=bearer(mint(scope="profile")))
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == (
        'Bearer realm="authsvc", error="insufficient_scope", '
        'error_description="The access token lacks a required scope.", scope="orders:read"'
    )
    assert response.json()["error"] == "insufficient_scope"


@pytest.mark.parametrize(
    "headers",
    [
        [("Authorization", "Bearer"), ("Accept", "*/*")],
        [("Authorization", "Bearer   ")],
        [("Authorization", "Bearer a.b.c"), ("Authorization", "Bearer d.e.f")],
    ],
)
async def test_invalid_request(client: httpx.AsyncClient, headers: list[tuple[str, str]]) -> None:
    response = await client.get("/whoami", headers=headers)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert 'error="invalid_request"' in response.headers["www-authenticate"]


async def test_jwks_unavailable_is_503_not_401(
    client: httpx.AsyncClient, jwks: JWKSStub, mint: Minter
) -> None:
    jwks.mode = "down"
    response = await client.get("/whoami", headers=bearer(mint()))
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert "retry-after" in response.headers


async def test_without_error_handler_status_and_challenge_still_hold(
    make_verifier: Callable[..., Verifier], mint: Minter
) -> None:
    app = build_app(make_verifier(), handler=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.get("/whoami", headers=bearer(mint(exp=1)))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert response.json()["detail"]["error"] == "invalid_token"


async def test_custom_realm(make_verifier: Callable[..., Verifier], mint: Minter, clock: FakeClock) -> None:
    app = build_app(make_verifier(), realm="orders")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.get("/orders")
    assert response.headers["www-authenticate"] == 'Bearer realm="orders"'


def test_require_validates_its_arguments(verifier: Verifier) -> None:
    with pytest.raises(ValueError):
        verifier.require(scopes=['bad"scope'])
    with pytest.raises(ValueError):
        verifier.require(realm='a"b')
    with pytest.raises(TypeError):
        verifier.require(scopes=[1])  # type: ignore[list-item]


async def test_openapi_declares_bearer_scheme(verifier: Verifier) -> None:
    schema = build_app(verifier).openapi()
    assert any(s.get("scheme") == "bearer" for s in schema["components"]["securitySchemes"].values())
