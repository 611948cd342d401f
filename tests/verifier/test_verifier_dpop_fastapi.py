"""The FastAPI dependency with DPoP (RFC 9449 §7): both schemes, the right challenge for each.

No ``from __future__ import annotations`` here: FastAPI must see the route
annotations, which refer to local names, as objects.
"""

from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from verifier_dpop_support import DpopClient, ProofKey
from verifier_support import FakeClock, Minter

from authsvc.verifier import DpopRequest, RotatingNonces, Verifier
from authsvc.verifier.fastapi import install_error_handler

BASE = "http://testserver"
ALGS = 'algs="ES256 EdDSA Ed25519 RS256 PS256"'
Claims = dict[str, Any]


def build_app(verifier: Verifier, **require_options: Any) -> FastAPI:
    app = FastAPI()
    install_error_handler(app)

    @app.get("/orders")
    async def orders(
        claims: Annotated[Claims, Depends(verifier.require(["orders:read"], **require_options))],
    ):
        return {"sub": claims["sub"]}

    @app.post("/orders")
    async def order(claims: Annotated[Claims, Depends(verifier.require(["orders:read"], **require_options))]):
        return {"sub": claims["sub"]}

    @app.get("/items/{name}")
    async def item(name: str, claims: Annotated[Claims, Depends(verifier.require(**require_options))]):
        return {"name": name}

    @app.get("/admin")
    async def admin(claims: Annotated[Claims, Depends(verifier.require(["admin"], **require_options))]):
        return {}

    async def own_check(request: Request) -> Claims:  # an app calling verify() itself
        scheme, _, token = request.headers["authorization"].partition(" ")
        proof = DpopRequest(request.headers.get("dpop", ""), request.method, str(request.url))
        return await verifier.verify(token, dpop=proof if scheme == "DPoP" else None)

    @app.get("/own")
    async def own(claims: Annotated[Claims, Depends(own_check)]):
        return {"sub": claims["sub"]}

    return app


@pytest.fixture
async def connect(make_verifier: Callable[..., Verifier]) -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    clients: list[httpx.AsyncClient] = []

    def build(verifier: Verifier | None = None, **require_options: Any) -> httpx.AsyncClient:
        app = build_app(verifier or make_verifier(), **require_options)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
        clients.append(client)
        return client

    yield build
    for client in clients:
        await client.aclose()


@pytest.fixture
def client(connect: Callable[..., httpx.AsyncClient]) -> httpx.AsyncClient:
    return connect()


def dpop_headers(client: DpopClient, token: str, *, path: str = "/orders", **proof: Any) -> dict[str, str]:
    proof.setdefault("url", BASE + path)
    return {"Authorization": f"DPoP {token}", "DPoP": client.proof(token, **proof)}


def challenge(response: httpx.Response) -> str:
    return response.headers["www-authenticate"]


@pytest.mark.parametrize("alg", ["ES256", "Ed25519", "PS256"])
async def test_dpop_request_accepted(
    client: httpx.AsyncClient, dpop_keys: dict[str, ProofKey], mint: Minter, clock: FakeClock, alg: str
) -> None:
    dpop = DpopClient(dpop_keys[alg], mint, clock)
    token = dpop.token()
    response = await client.get("/orders", headers=dpop_headers(dpop, token))
    assert response.status_code == 200, response.text
    assert response.json() == {"sub": "user-7f3a"}
    assert "dpop-nonce" not in response.headers
    response = await client.post("/orders", headers=dpop_headers(dpop, token, method="POST"))
    assert response.status_code == 200
    headers = dpop_headers(dpop, token)
    headers["Authorization"] = f"dpop {token}"  # the scheme is case-insensitive
    response = await client.get("/orders?page=2", headers=headers)  # the query is not part of htu
    assert response.status_code == 200


async def test_bearer_still_works_for_unbound_tokens(client: httpx.AsyncClient, mint: Minter) -> None:
    response = await client.get("/orders", headers={"Authorization": f"Bearer {mint()}"})
    assert response.status_code == 200


async def test_bound_token_sent_as_bearer(client: httpx.AsyncClient, dpop_client: DpopClient) -> None:
    token = dpop_client.token()
    for headers in (
        {"Authorization": f"Bearer {token}"},
        {**dpop_headers(dpop_client, token), "Authorization": f"Bearer {token}"},
    ):
        response = await client.get("/orders", headers=headers)
        assert response.status_code == 401
        assert challenge(response).startswith('Bearer realm="authsvc", error="invalid_token"')
        assert response.json()["error"] == "invalid_token"


async def test_unbound_token_sent_as_dpop(
    client: httpx.AsyncClient, dpop_client: DpopClient, mint: Minter
) -> None:
    response = await client.get("/orders", headers=dpop_headers(dpop_client, mint()))
    assert response.status_code == 401
    assert challenge(response) == (
        'DPoP realm="authsvc", error="invalid_token", error_description="The access token is not bound '
        f'to a DPoP key: send it with the Bearer scheme.", {ALGS}'
    )
    assert response.json()["error"] == "invalid_token"


@pytest.mark.parametrize(
    "proof",
    [
        {"url": BASE + "/elsewhere"},
        {"url": "https://testserver/orders"},
        {"method": "POST"},
        {"ath": "x" * 43},
        {"iat": 0},
    ],
)
async def test_bad_proof(client: httpx.AsyncClient, dpop_client: DpopClient, proof: dict[str, Any]) -> None:
    response = await client.get("/orders", headers=dpop_headers(dpop_client, dpop_client.token(), **proof))
    assert response.status_code == 401
    assert challenge(response) == (
        'DPoP realm="authsvc", error="invalid_dpop_proof", '
        f'error_description="The DPoP proof is invalid.", {ALGS}'
    )
    assert response.json() == {
        "error": "invalid_dpop_proof",
        "error_description": "The DPoP proof is invalid.",
    }


async def test_proof_by_another_key(
    client: httpx.AsyncClient, dpop_client: DpopClient, dpop_keys: dict[str, ProofKey], clock: FakeClock
) -> None:
    token = dpop_client.token()
    proof = dpop_keys["RS256"].proof(clock.now, token=token, url=BASE + "/orders")
    response = await client.get("/orders", headers={"Authorization": f"DPoP {token}", "DPoP": proof})
    assert response.status_code == 401
    assert challenge(response).startswith('DPoP realm="authsvc", error="invalid_token"')


async def test_replayed_proof(client: httpx.AsyncClient, dpop_client: DpopClient) -> None:
    headers = dpop_headers(dpop_client, dpop_client.token())
    assert (await client.get("/orders", headers=headers)).status_code == 200
    response = await client.get("/orders", headers=headers)
    assert response.status_code == 401
    assert 'error="invalid_dpop_proof"' in challenge(response)
    assert response.json()["error_description"] == "The DPoP proof was already used."


async def test_malformed_dpop_requests(client: httpx.AsyncClient, dpop_client: DpopClient) -> None:
    token = dpop_client.token()
    one, two = dpop_client.proof(token, url=BASE + "/orders"), dpop_client.proof(token, url=BASE + "/orders")
    response = await client.get(
        "/orders", headers=[("Authorization", f"DPoP {token}"), ("DPoP", one), ("DPoP", two)]
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert challenge(response).startswith('DPoP realm="authsvc", error="invalid_request"')
    response = await client.get("/orders", headers={"Authorization": "DPoP ", "DPoP": one})
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")
    response = await client.get("/orders", headers={"Authorization": f"DPoP {token}"})
    assert (response.status_code, response.json()["error"]) == (401, "invalid_dpop_proof")
    assert ALGS in challenge(response)
    response = await client.get("/orders", headers={"Authorization": f"DPoP {token}", "DPoP": "junk<zqxj>"})
    assert (response.status_code, response.json()["error"]) == (401, "invalid_dpop_proof")
    assert "zqxj" not in response.text + challenge(response)
    # two Authorization headers stay a 400, whatever their schemes
    response = await client.get(
        "/orders", headers=[("Authorization", f"DPoP {token}"), ("Authorization", "Bearer x"), ("DPoP", one)]
    )
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")


async def test_nonce_demanded_then_retried(
    connect: Callable[..., httpx.AsyncClient],
    make_verifier: Callable[..., Verifier],
    dpop_client: DpopClient,
    clock: FakeClock,
    mint: Minter,
) -> None:
    client = connect(make_verifier(dpop_nonces=RotatingNonces(b"0123456789abcdef", clock=clock)))
    token = dpop_client.token()
    response = await client.get("/orders", headers=dpop_headers(dpop_client, token))
    assert response.status_code == 401
    assert challenge(response) == (
        'DPoP realm="authsvc", error="use_dpop_nonce", '
        f'error_description="The DPoP proof needs the server nonce sent in the DPoP-Nonce header.", {ALGS}'
    )
    assert response.json()["error"] == "use_dpop_nonce"
    nonce = response.headers["dpop-nonce"]
    response = await client.get("/orders", headers=dpop_headers(dpop_client, token, nonce=nonce))
    assert response.status_code == 200
    assert response.headers["dpop-nonce"]  # the next nonce, ahead of time
    clock.advance(125)
    response = await client.get("/orders", headers=dpop_headers(dpop_client, token, nonce=nonce))
    assert (response.status_code, response.json()["error"]) == (401, "use_dpop_nonce")
    assert response.headers["dpop-nonce"] != nonce
    # Bearer requests know nothing of nonces.
    response = await client.get("/orders", headers={"Authorization": f"Bearer {mint()}"})
    assert response.status_code == 200 and "dpop-nonce" not in response.headers


async def test_insufficient_scope_under_dpop(client: httpx.AsyncClient, dpop_client: DpopClient) -> None:
    response = await client.get(
        "/admin", headers=dpop_headers(dpop_client, dpop_client.token(), path="/admin")
    )
    assert response.status_code == 403
    assert challenge(response) == (
        'DPoP realm="authsvc", error="insufficient_scope", '
        f'error_description="The access token lacks a required scope.", scope="admin", {ALGS}'
    )


async def test_replay_cache_down_is_503(
    connect: Callable[..., httpx.AsyncClient], make_verifier: Callable[..., Verifier], dpop_client: DpopClient
) -> None:
    class Down:
        async def first_use(self, owner: str, jti: str, expires_at: float) -> bool:
            raise TimeoutError

    client = connect(make_verifier(dpop_replay=Down()))
    response = await client.get("/orders", headers=dpop_headers(dpop_client, dpop_client.token()))
    assert (response.status_code, response.json()["error"]) == (503, "temporarily_unavailable")
    assert "retry-after" in response.headers


async def test_public_url_names_the_htu(
    connect: Callable[..., httpx.AsyncClient], make_verifier: Callable[..., Verifier], dpop_client: DpopClient
) -> None:
    client = connect(make_verifier(), public_url="https://api.example/v1/")
    token = dpop_client.token()
    response = await client.get(
        "/orders", headers=dpop_headers(dpop_client, token, url="https://api.example/v1/orders")
    )
    assert response.status_code == 200
    response = await client.get("/orders", headers=dpop_headers(dpop_client, token))
    assert (response.status_code, response.json()["error"]) == (401, "invalid_dpop_proof")


async def test_htu_follows_the_host_header_without_public_url(
    client: httpx.AsyncClient, dpop_client: DpopClient
) -> None:
    token = dpop_client.token()
    headers = {**dpop_headers(dpop_client, token, url="https://api.example/orders"), "Host": "api.example"}
    assert (await client.get("/orders", headers=headers)).status_code == 401  # the app sees http
    headers = {
        **dpop_headers(dpop_client, token, url="http://api.example:8080/orders"),
        "Host": "api.example:8080",
    }
    assert (await client.get("/orders", headers=headers)).status_code == 200


async def test_percent_encoded_paths(client: httpx.AsyncClient, dpop_client: DpopClient) -> None:
    token = dpop_client.token()
    response = await client.get("/items/a%20b", headers=dpop_headers(dpop_client, token, path="/items/a%20b"))
    assert response.status_code == 200
    assert response.json() == {"name": "a b"}


async def test_an_apps_own_dependency_gets_dpop_challenges(
    connect: Callable[..., httpx.AsyncClient],
    make_verifier: Callable[..., Verifier],
    dpop_client: DpopClient,
    clock: FakeClock,
) -> None:
    client = connect(make_verifier(dpop_nonces=RotatingNonces(b"0123456789abcdef", clock=clock)))
    token = dpop_client.token()
    response = await client.get("/own", headers=dpop_headers(dpop_client, token, path="/own"))
    assert response.status_code == 401
    assert challenge(response).startswith('DPoP realm="authsvc", error="use_dpop_nonce"')
    nonce = response.headers["dpop-nonce"]
    response = await client.get("/own", headers=dpop_headers(dpop_client, token, path="/own", nonce=nonce))
    assert response.status_code == 200
    response = await client.get("/own", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert challenge(response).startswith('Bearer realm="authsvc", error="invalid_token"')


def test_require_checks_public_url(verifier: Verifier) -> None:
    for bad in (
        "ftp://api.example",
        "api.example",
        "https://api.example/?x=1",
        "https://u@api.example",
        "https://",
    ):
        with pytest.raises(ValueError):
            verifier.require(public_url=bad)
