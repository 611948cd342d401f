"""A generated battery of hostile tokens, each sent everywhere a token is read.

Every token is built from a real login's access or refresh token and the
server's real RSA key (or a foreign one), changing one thing. Each one goes to

* ``GET /users/me`` as a bearer token                    -> 401 invalid_token
* ``POST /token`` as a ``refresh_token``                 -> 400 invalid_grant
  (and the genuine refresh token of that login still works afterwards)
* ``POST /introspect`` by a confidential client          -> 200 {"active": false}
* :class:`authsvc.verifier.Verifier` against the app     -> InvalidToken

Oversized tokens may instead be refused by the size limits (413). Never a
5xx, never another exception. Control tests prove the builders make tokens
the server accepts when nothing is wrong, so every refusal is for the one
thing each case breaks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from authsvc.app import create_app
from authsvc.clock import FrozenClock
from authsvc.runtime import Services
from authsvc.verifier import InvalidToken, Verifier
from tests.support import ISSUER, AppHarness, make_settings

pytestmark = pytest.mark.asyncio(loop_scope="module")

DELETE: Any = object()
INTROSPECTOR = "resource-server"
ONE_MB = 1024 * 1024


# --- encoding and signing by hand --------------------------------------------------------------
def b64(data: bytes | str | dict[str, Any]) -> str:
    if isinstance(data, dict):
        data = json.dumps(data, separators=(",", ":"))
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _signature(alg: str, key: Any, signing_input: bytes) -> bytes:
    if alg == "RS256":
        return key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[no-any-return]
    if alg == "RS512":
        return key.sign(signing_input, padding.PKCS1v15(), hashes.SHA512())  # type: ignore[no-any-return]
    if alg == "PS256":
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=hashes.SHA256.digest_size)
        return key.sign(signing_input, pss, hashes.SHA256())  # type: ignore[no-any-return]
    if alg == "EdDSA":
        return key.sign(signing_input)  # type: ignore[no-any-return]
    if alg.startswith("HS"):
        digest = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}[alg]
        return hmac.new(key, signing_input, digest).digest()
    raise AssertionError(f"test bug: no signer for {alg}")


def sign_raw(header: dict[str, Any] | str, payload: dict[str, Any] | str | bytes, alg: str, key: Any) -> str:
    """A compact JWS over exactly these header/payload bytes (raw text keeps duplicate members)."""
    signing_input = f"{b64(header)}.{b64(payload)}"
    return f"{signing_input}.{b64(_signature(alg, key, signing_input.encode()))}"


def with_changes(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    result = {**base, **changes}
    return {k: v for k, v in result.items() if v is not DELETE}


def replace_segment(token: str, index: int, value: str) -> str:
    parts = token.split(".")
    parts[index] = value
    return ".".join(parts)


def flip(segment: str, index: int) -> str:
    return segment[:index] + ("A" if segment[index] != "A" else "B") + segment[index + 1 :]


# --- the context every builder gets -------------------------------------------------------------
@dataclass(frozen=True)
class Template:
    """A genuine token of one kind: its header, claims and compact form."""

    kind: str  # "access" | "refresh"
    token: str
    header: dict[str, Any]
    claims: dict[str, Any]

    @property
    def typ(self) -> str:
        return str(self.header["typ"])

    @property
    def other_typ(self) -> str:
        return "rt+jwt" if self.kind == "access" else "at+jwt"

    @classmethod
    def of(cls, kind: str, token: str) -> Template:
        header, payload, _ = token.split(".")
        return cls(kind, token, json.loads(unb64(header)), json.loads(unb64(payload)))


@dataclass(frozen=True)
class Keys:
    kid: str
    alg: str
    private: rsa.RSAPrivateKey
    public_pem: bytes
    public_pkcs1_pem: bytes
    public_jwk: bytes
    foreign: rsa.RSAPrivateKey
    foreign_ed: ed25519.Ed25519PrivateKey
    foreign_ed_jwk: dict[str, Any]
    now: int

    def sign(self, tpl: Template, header: Any = None, claims: Any = None, **header_changes: Any) -> str:
        """Our real key over the template's header/claims (or the given ones), changed as asked."""
        head = with_changes(tpl.header, header_changes) if header is None else header
        body = tpl.claims if claims is None else claims
        return sign_raw(head, body, self.alg, self.private)

    def claims(self, tpl: Template, **changes: Any) -> str:
        return self.sign(tpl, claims=with_changes(tpl.claims, changes))

    def raw_claims(self, tpl: Template, **raw: str) -> str:
        """The template's claims as JSON text with members appended verbatim (duplicates allowed)."""
        kept = {k: v for k, v in tpl.claims.items() if k not in raw}
        text = json.dumps(kept, separators=(",", ":"))
        return self.sign(tpl, claims=text[:-1] + "".join(f',"{k}":{v}' for k, v in raw.items()) + "}")

    def raw_header(self, tpl: Template, text: str, alg: str | None = None) -> str:
        return sign_raw(text, tpl.claims, alg or self.alg, self.private)


Builder = Callable[[Keys, Template], str]


@dataclass(frozen=True)
class Case:
    name: str
    build: Builder
    kinds: tuple[str, ...] = ("access", "refresh")
    oversized: bool = False
    introspect_active: bool = False  # a genuine token for another audience is active (RFC 7662)


def _header_with(tpl: Template, **changes: Any) -> dict[str, Any]:
    return with_changes(tpl.header, changes)


def _hmac_token(keys: Keys, tpl: Template, secret: bytes, alg: str = "HS256") -> str:
    return sign_raw(with_changes(tpl.header, {"alg": alg}), tpl.claims, alg, secret)


def _attacker_header(keys: Keys, tpl: Template, **extra: Any) -> dict[str, Any]:
    return with_changes(tpl.header, {"alg": "EdDSA", **extra})


def _dup_header(tpl: Template, name: str, first: Any) -> str:
    """Header JSON with ``name`` twice: a bad value first, the genuine one last."""
    rest = json.dumps({k: v for k, v in tpl.header.items() if k != name}, separators=(",", ":"))
    return f'{{"{name}":{json.dumps(first)},{rest[1:-1]},"{name}":{json.dumps(tpl.header[name])}}}'


def _dup_claim(tpl: Template, name: str, first: Any) -> str:
    rest = json.dumps({k: v for k, v in tpl.claims.items() if k != name}, separators=(",", ":"))
    return f'{{"{name}":{json.dumps(first)},{rest[1:-1]},"{name}":{json.dumps(tpl.claims[name])}}}'


def _noncanonical(token: str) -> str:
    """The same signature bytes spelled differently: set unused low bits of the last character."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    head, sig = token.rsplit(".", 1)
    index = alphabet.index(sig[-1])
    return f"{head}.{sig[:-1]}{alphabet[index ^ 1]}"


CASES: list[Case] = [
    # --- unsigned and algorithm confusion ---
    Case("alg-none", lambda k, t: f"{b64(with_changes(t.header, {'alg': 'none'}))}.{b64(t.claims)}."),
    Case(
        "alg-none-with-signature",
        lambda k, t: replace_segment(t.token, 0, b64(with_changes(t.header, {"alg": "none"}))),
    ),
    Case("alg-None-capitalised", lambda k, t: k.sign(t, alg="None")),
    Case("alg-missing", lambda k, t: k.sign(t, alg=DELETE)),
    Case("hs256-public-pem-as-secret", lambda k, t: _hmac_token(k, t, k.public_pem)),
    Case("hs256-public-pkcs1-pem-as-secret", lambda k, t: _hmac_token(k, t, k.public_pkcs1_pem)),
    Case("hs256-public-jwk-as-secret", lambda k, t: _hmac_token(k, t, k.public_jwk)),
    Case("hs512-public-pem-as-secret", lambda k, t: _hmac_token(k, t, k.public_pem, "HS512")),
    Case(
        "ps256-by-our-rs256-key",
        lambda k, t: sign_raw(_header_with(t, alg="PS256"), t.claims, "PS256", k.private),
    ),
    Case(
        "rs512-by-our-rs256-key",
        lambda k, t: sign_raw(_header_with(t, alg="RS512"), t.claims, "RS512", k.private),
    ),
    Case("foreign-rsa-key-with-our-kid", lambda k, t: sign_raw(t.header, t.claims, "RS256", k.foreign)),
    Case(
        "foreign-ed25519-key-with-our-kid",
        lambda k, t: sign_raw(_header_with(t, alg="EdDSA"), t.claims, "EdDSA", k.foreign_ed),
    ),
    # --- kid ---
    Case("kid-traversal-etc-passwd", lambda k, t: k.sign(t, kid="../../etc/passwd")),
    Case("kid-traversal-keyset", lambda k, t: k.sign(t, kid="../keyset")),
    Case("kid-keyset-json", lambda k, t: k.sign(t, kid="keyset.json")),
    Case("kid-absolute-path", lambda k, t: k.sign(t, kid="/etc/shadow")),
    Case("kid-unicode", lambda k, t: k.sign(t, kid="ключ-🔑-\u202e")),
    Case("kid-nul", lambda k, t: k.sign(t, kid=t.header["kid"] + "\x00")),
    Case("kid-10kb", lambda k, t: k.sign(t, kid="k" * 10_000)),
    Case("kid-number", lambda k, t: k.sign(t, kid=7)),
    Case("kid-null", lambda k, t: k.sign(t, kid=None)),
    Case("kid-empty", lambda k, t: k.sign(t, kid="")),
    Case("kid-missing", lambda k, t: k.sign(t, kid=DELETE)),
    Case("kid-unknown", lambda k, t: k.sign(t, kid=b64(secrets.token_bytes(32)))),
    Case("kid-case-changed", lambda k, t: k.sign(t, kid=t.header["kid"].swapcase())),
    # --- headers that bring their own key, or extensions ---
    Case(
        "embedded-jwk",
        lambda k, t: sign_raw(
            _attacker_header(k, t, kid=k.foreign_ed_jwk["kid"], jwk=k.foreign_ed_jwk),
            t.claims,
            "EdDSA",
            k.foreign_ed,
        ),
    ),
    Case(
        "embedded-jwk-with-our-kid",
        lambda k, t: sign_raw(_attacker_header(k, t, jwk=k.foreign_ed_jwk), t.claims, "EdDSA", k.foreign_ed),
    ),
    Case(
        "jku-to-attacker",
        lambda k, t: sign_raw(
            _attacker_header(k, t, kid=k.foreign_ed_jwk["kid"], jku="https://evil.example/jwks.json"),
            t.claims,
            "EdDSA",
            k.foreign_ed,
        ),
    ),
    Case(
        "x5u-to-attacker",
        lambda k, t: sign_raw(
            _attacker_header(k, t, kid=k.foreign_ed_jwk["kid"], x5u="https://evil.example/cert.pem"),
            t.claims,
            "EdDSA",
            k.foreign_ed,
        ),
    ),
    Case("jku-signed-by-our-key", lambda k, t: k.sign(t, jku="https://evil.example/jwks.json")),
    Case("x5u-signed-by-our-key", lambda k, t: k.sign(t, x5u="https://evil.example/cert.pem")),
    Case(
        "crit-unknown",
        lambda k, t: k.sign(t, crit=["urn:example:must-understand"], **{"urn:example:must-understand": True}),
    ),
    Case("crit-empty", lambda k, t: k.sign(t, crit=[])),
    # --- typ ---
    Case("typ-missing", lambda k, t: k.sign(t, typ=DELETE)),
    Case("typ-jwt", lambda k, t: k.sign(t, typ="JWT")),
    Case(
        "typ-of-the-other-kind",
        lambda k, t: k.sign(t, typ=t.other_typ),
    ),
    Case("typ-number", lambda k, t: k.sign(t, typ=1)),
    # --- claims, validly signed by our key ---
    Case("wrong-iss", lambda k, t: k.claims(t, iss="https://evil.example")),
    Case("iss-with-trailing-slash", lambda k, t: k.claims(t, iss=t.claims["iss"] + "/")),
    Case("iss-missing", lambda k, t: k.claims(t, iss=DELETE)),
    Case("wrong-aud", lambda k, t: k.claims(t, aud="another-api"), kinds=("access",), introspect_active=True),
    Case(
        "aud-missing",
        lambda k, t: k.claims(t, aud=DELETE),
        kinds=("access",),
    ),
    Case(
        "aud-list-without-us",
        lambda k, t: k.claims(t, aud=["billing", "orders"]),
        kinds=("access",),
        introspect_active=True,
    ),
    Case("expired", lambda k, t: k.claims(t, exp=k.now - 3600)),
    Case("exp-missing", lambda k, t: k.claims(t, exp=DELETE)),
    Case("nbf-in-the-future", lambda k, t: k.claims(t, nbf=k.now + 3600)),
    Case("iat-in-the-future", lambda k, t: k.claims(t, iat=k.now + 3600)),
    Case("exp-as-string", lambda k, t: k.claims(t, exp=str(k.now + 900))),
    Case("iat-as-string", lambda k, t: k.claims(t, iat=str(k.now))),
    Case("nbf-as-string", lambda k, t: k.claims(t, nbf=str(k.now - 10))),
    Case("exp-as-bool", lambda k, t: k.claims(t, exp=True)),
    Case("exp-nan", lambda k, t: k.raw_claims(t, exp="NaN")),
    Case("exp-infinity", lambda k, t: k.raw_claims(t, exp="Infinity")),
    Case("exp-1e999", lambda k, t: k.raw_claims(t, exp="1e999")),
    Case("sub-missing", lambda k, t: k.claims(t, sub=DELETE)),
    Case("jti-missing", lambda k, t: k.claims(t, jti=DELETE)),
    Case("jti-number", lambda k, t: k.claims(t, jti=12345)),
    # --- duplicate JSON members (a bad value first, the genuine value last) ---
    Case(
        "duplicate-header-alg",
        lambda k, t: k.raw_header(t, _dup_header(t, "alg", "none")),
    ),
    Case(
        "duplicate-header-typ",
        lambda k, t: k.raw_header(t, _dup_header(t, "typ", "JWT")),
    ),
    Case(
        "duplicate-header-kid",
        lambda k, t: k.raw_header(t, _dup_header(t, "kid", "../keyset")),
    ),
    Case("duplicate-claim-exp", lambda k, t: k.sign(t, claims=_dup_claim(t, "exp", k.now - 3600))),
    Case("duplicate-claim-iss", lambda k, t: k.sign(t, claims=_dup_claim(t, "iss", "https://evil.example"))),
    Case("duplicate-claim-sub", lambda k, t: k.sign(t, claims=_dup_claim(t, "sub", "u_mallory"))),
    # --- tampering with a genuine token ---
    Case(
        "tampered-header",
        lambda k, t: replace_segment(t.token, 0, b64(with_changes(t.header, {"x": 1}))),
    ),
    Case(
        "tampered-payload",
        lambda k, t: replace_segment(t.token, 1, b64(with_changes(t.claims, {"scope": "read write admin"}))),
    ),
    Case("tampered-signature", lambda k, t: replace_segment(t.token, 2, flip(t.token.split(".")[2], 10))),
    Case("signature-stripped", lambda k, t: replace_segment(t.token, 2, "")),
    Case("signature-non-canonical-base64", lambda k, t: _noncanonical(t.token)),
    Case("truncated", lambda k, t: t.token[:-7]),
    Case("truncated-to-half", lambda k, t: t.token[: len(t.token) // 2]),
    # --- shape ---
    Case("two-segments", lambda k, t: t.token.rsplit(".", 1)[0]),
    Case("four-segments", lambda k, t: t.token + ".AAAA"),
    Case("one-segment", lambda k, t: t.token.replace(".", "")),
    Case("non-base64", lambda k, t: "!!!.@@@.###"),
    Case("base64-padding", lambda k, t: replace_segment(t.token, 1, t.token.split(".")[1] + "==")),
    Case("standard-base64-alphabet", lambda k, t: t.token.replace("-", "+").replace("_", "/") + "+/"),
    Case("header-not-json", lambda k, t: sign_raw("not json at all", t.claims, k.alg, k.private)),
    Case("header-json-array", lambda k, t: sign_raw('["alg","RS256"]', t.claims, k.alg, k.private)),
    Case("payload-not-json", lambda k, t: k.sign(t, claims=b"\xff\xfe not json")),
    Case("payload-json-array", lambda k, t: k.sign(t, claims="[1,2]")),
    Case("payload-json-string", lambda k, t: k.sign(t, claims='"sub"')),
    Case(
        "one-megabyte",
        lambda k, t: k.sign(t, claims=with_changes(t.claims, {"pad": "x" * ONE_MB})),
        oversized=True,
    ),
    Case("one-megabyte-of-garbage", lambda k, t: "A" * ONE_MB, oversized=True),
]


def _params(channel: str) -> list[Any]:
    del channel  # every channel refuses every case
    return [
        pytest.param(case, kind, id=f"{kind}-{case.name}")
        for kind in ("access", "refresh")
        for case in CASES
        if kind in case.kinds
    ]


assert len({c.name for c in CASES}) == len(CASES) >= 40


# --- the app, shared by the whole module (each test logs in afresh where state matters) -----------
@dataclass
class World:
    harness: AppHarness
    keys: Keys
    secret: str
    verifier: Verifier

    async def templates(self) -> dict[str, Template]:
        response = await self.harness.login()
        assert response.status_code == 200, f"expected a login to work, got {response.text}"
        body = response.json()
        return {
            "access": Template.of("access", body["access_token"]),
            "refresh": Template.of("refresh", body["refresh_token"]),
        }


def _keys(services: Services, jwks: dict[str, Any], now: float) -> Keys:
    signing = services.keys.signing_key()
    private = signing.key.raw_value
    assert isinstance(private, rsa.RSAPrivateKey), "these tests need the default RS256 keys"
    public = private.public_key()
    (published,) = [k for k in jwks["keys"] if k["kid"] == signing.kid]
    foreign_ed = ed25519.Ed25519PrivateKey.generate()
    raw = foreign_ed.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    ed_jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64(raw)}
    ed_kid = b64(hashlib.sha256(json.dumps(ed_jwk, separators=(",", ":"), sort_keys=True).encode()).digest())
    return Keys(
        kid=signing.kid,
        alg=signing.alg,
        private=private,
        public_pem=public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        public_pkcs1_pem=public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
        public_jwk=json.dumps(published, separators=(",", ":"), sort_keys=True).encode(),
        foreign=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        foreign_ed=foreign_ed,
        foreign_ed_jwk={**ed_jwk, "kid": ed_kid},
        now=int(now),
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    tmp: Path = tmp_path_factory.mktemp("hostile")
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.upper().startswith("AUTHSVC_") and not name.upper().startswith("AUTHSVC_TEST_"):
                mp.delenv(name)
        settings = make_settings(tmp)
    clock = FrozenClock(1_800_000_000.0)
    app = create_app(settings, clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with (
            httpx.AsyncClient(transport=transport, base_url=ISSUER) as client,
            httpx.AsyncClient(transport=transport, base_url=ISSUER) as verifier_http,
        ):
            services: Services = app.state.services
            harness = AppHarness(client, services, clock, settings)
            await harness.add_user()
            secret = await harness.add_service_client(INTROSPECTOR)
            jwks = (await client.get("/.well-known/jwks.json")).json()
            verifier = Verifier(ISSUER, "authsvc", http=verifier_http, clock=clock.now)
            yield World(harness, _keys(services, jwks, clock.now()), secret, verifier)


# --- the four places a token is read --------------------------------------------------------------
def _no_server_error(response: httpx.Response) -> None:
    assert response.status_code < 500, f"expected a 4xx refusal, got {response.status_code}: {response.text}"


async def _users_me(world: World, token: str, oversized: bool) -> None:
    response = await world.harness.me(token)
    _no_server_error(response)
    if oversized and response.status_code in (413, 431):
        return
    assert response.status_code == 401, f"expected 401 invalid_token, got {response.status_code}"
    assert response.json()["error"] == "invalid_token", f"expected invalid_token, got {response.text}"
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def _token_endpoint(world: World, case: Case, build: Callable[[Template], str]) -> None:
    templates = await world.templates()  # a fresh session: the hostile token may name its jti
    genuine = templates["refresh"].token
    for kind in case.kinds:
        response = await world.harness.refresh(build(templates[kind]))
        _no_server_error(response)
        if case.oversized and response.status_code == 413:
            continue
        assert response.status_code == 400, f"expected 400 invalid_grant ({kind}), got {response.text}"
        assert response.json()["error"] == "invalid_grant", f"expected invalid_grant, got {response.text}"
    after = await world.harness.refresh(genuine)
    assert after.status_code == 200, f"expected the genuine refresh token untouched, got {after.text}"


async def _introspect(world: World, token: str, case: Case) -> None:
    response = await world.harness.client.post(
        "/introspect", data={"token": token}, auth=(INTROSPECTOR, world.secret)
    )
    _no_server_error(response)
    if case.oversized and response.status_code == 413:
        return
    assert response.status_code == 200, f"expected 200, got {response.status_code}: {response.text}"
    body = response.json()
    if case.introspect_active:  # genuine for another audience: active, and says which audience
        claims = json.loads(unb64(token.split(".")[1]))
        assert body.get("active") is True and body.get("aud") == claims["aud"], (
            f"expected active with the token's own aud, got {response.text}"
        )
        return
    assert body == {"active": False}, f"expected an inactive token, got {response.text}"


async def _verifier(world: World, token: str) -> None:
    with pytest.raises(InvalidToken):
        await world.verifier.verify(token)


# --- the battery ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("case", "kind"), _params("me"))
async def test_bearer_at_users_me_is_401(world: World, case: Case, kind: str) -> None:
    template = (await world.templates())[kind]
    await _users_me(world, case.build(world.keys, template), case.oversized)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES])
async def test_refresh_grant_is_invalid_grant(world: World, case: Case) -> None:
    """Built from the access and the refresh token of one fresh login, which stays usable."""
    await _token_endpoint(world, case, lambda t: case.build(world.keys, t))


@pytest.mark.parametrize(("case", "kind"), _params("introspect"))
async def test_introspection_says_inactive(world: World, case: Case, kind: str) -> None:
    template = (await world.templates())[kind]
    await _introspect(world, case.build(world.keys, template), case)


@pytest.mark.parametrize(("case", "kind"), _params("verifier"))
async def test_verifier_raises_invalid_token(world: World, case: Case, kind: str) -> None:
    template = (await world.templates())[kind]
    await _verifier(world, case.build(world.keys, template))


# --- controls: the builders make acceptable tokens when nothing is wrong -----------------------------
async def test_control_genuine_and_hand_signed_access_tokens_are_accepted(world: World) -> None:
    template = (await world.templates())["access"]
    for token in (template.token, world.keys.sign(template)):
        assert (await world.harness.me(token)).status_code == 200, "expected the control token accepted"
        claims = await world.verifier.verify(token)
        assert claims["sub"] == template.claims["sub"]
        response = await world.harness.client.post(
            "/introspect", data={"token": token}, auth=(INTROSPECTOR, world.secret)
        )
        assert response.json()["active"] is True, f"expected an active token, got {response.text}"


async def test_control_hand_signed_refresh_token_is_accepted(world: World) -> None:
    template = (await world.templates())["refresh"]
    token = world.keys.sign(template)
    response = await world.harness.client.post(
        "/introspect", data={"token": token}, auth=(INTROSPECTOR, world.secret)
    )
    assert response.json()["active"] is True, f"expected an active token, got {response.text}"
    assert (await world.harness.refresh(token)).status_code == 200, "expected the control token accepted"
