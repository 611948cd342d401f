"""Numeric claims out of range reach the verifier (issue #13, finding 11).

CONTRACT.md "Trust rules": every numeric claim out of range is refused. An
``exp``, ``iat`` or ``nbf`` that no IEEE double can hold (an integer literal
of 400 digits, either sign) is ``InvalidToken`` from ``verify`` (async and
sync) and 401 from the FastAPI dependency; never accepted, never another
exception (one test per entry point, over every case). The tokens carry a
real signature by the published key, so the refusal cannot come from the
signature check.
"""

from collections.abc import Callable
from typing import Any

import httpx
from fastapi import Depends, FastAPI
from verifier_support import DELETE, FakeClock, Signer, default_claims, sign_raw

from authsvc.verifier import InvalidToken, SyncVerifier, Verifier
from authsvc.verifier.fastapi import install_error_handler

HUGE = "1" + "0" * 400

CASES = [(name, sign + HUGE) for name in ("exp", "iat", "nbf") for sign in ("", "-")]
IDS = [f"{name}={'-' if raw.startswith('-') else '+'}1e400" for name, raw in CASES]


def _token(signer: Signer, clock: FakeClock, name: str, raw: str) -> str:
    """A correctly signed access token whose ``name`` claim is written verbatim as ``raw``."""
    import json

    claims = json.dumps(default_claims(clock.now, **{name: DELETE}))
    return sign_raw(
        signer,
        {"alg": signer.alg, "kid": signer.kid, "typ": "at+jwt"},
        claims[:-1] + f', "{name}": {raw}}}',
    )


async def test_async_verify_refuses_numbers_out_of_range(
    verifier: Verifier, rsa_signer: Signer, clock: FakeClock
) -> None:
    accepted = []
    for (name, raw), label in zip(CASES, IDS, strict=True):
        try:
            await verifier.verify(_token(rsa_signer, clock, name, raw))
        except InvalidToken:
            continue
        accepted.append(label)
    assert not accepted, f"accepted tokens with {accepted}"


def test_sync_verify_refuses_numbers_out_of_range(
    make_sync_verifier: Callable[..., SyncVerifier], rsa_signer: Signer, clock: FakeClock
) -> None:
    verifier = make_sync_verifier()
    accepted = []
    for (name, raw), label in zip(CASES, IDS, strict=True):
        try:
            verifier.verify(_token(rsa_signer, clock, name, raw))
        except InvalidToken:
            continue
        accepted.append(label)
    assert not accepted, f"accepted tokens with {accepted}"


async def test_fastapi_dependency_answers_401_to_numbers_out_of_range(
    verifier: Verifier, rsa_signer: Signer, clock: FakeClock
) -> None:
    app = FastAPI()
    install_error_handler(app)

    async def whoami(claims: Any = Depends(verifier.require())) -> dict[str, Any]:  # noqa: B008
        return {"sub": claims["sub"]}

    app.get("/whoami")(whoami)
    wrong = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for (name, raw), label in zip(CASES, IDS, strict=True):
            token = _token(rsa_signer, clock, name, raw)
            r = await client.get("/whoami", headers={"Authorization": f"Bearer {token}"})
            if r.status_code != 401 or "invalid_token" not in r.headers.get("www-authenticate", ""):
                wrong.append(f"{label}: {r.status_code}")
    assert not wrong, wrong
