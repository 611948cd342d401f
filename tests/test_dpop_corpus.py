"""A hand-built corpus of bad DPoP proofs against /token and /users/me, and hypothesis mutating good ones.

spec/dpop.md: at /token (and /par) a refused proof is ``400 {"error":
"invalid_dpop_proof"}``; at a resource it is 401 with ``WWW-Authenticate: DPoP
error="invalid_dpop_proof", algs="…"``. Every entry below is one way a proof can
be wrong (RFC 9449 §4.3, RFC 8725): the request it names, its age, its ``jti``,
its key (private members, weak or unsupported keys, a key that did not sign
it), its algorithm (``none``, HS256), its header members, its size, its JSON.
None may be accepted and none may be a 5xx. The valid proof next to each is
accepted, so a refusal is the proof's fault, not the harness's.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc.jws import JWSRegistry

from tests.dpop_support import (
    ALGS,
    TOKEN_URL,
    Key,
    access_token_hash,
    b64,
    challenge_params,
    ec_p384_key,
    forged,
    make_proof,
    new_key,
    public_jwk,
    rsa_1024_key,
    sign_parts,
    thumbprint,
)
from tests.support import ISSUER, AppHarness, claims_of
from tests.test_client_auth import basic
from tests.trust_support import brief

Factory = Callable[..., Any]
ME_URL = ISSUER + "/users/me"
SKEW = 60  # AUTHSVC_CLOCK_SKEW's default
#: Entries the HTTP layer may refuse first (CONTRACT.md: oversized headers -> 431).
HEADER_TOO_LARGE = frozenset({"64 KB header value"})


@dataclass
class Target:
    """Where a proof goes: /token (client_credentials) or /users/me (with a token bound to ``key``)."""

    h: AppHarness
    key: Key
    method: str
    url: str
    access_token: str | None  # at the resource
    auth: dict[str, str]

    @property
    def ath(self) -> str | None:
        return access_token_hash(self.access_token) if self.access_token else None

    def claims(self, **overrides: Any) -> dict[str, Any]:
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": self.method,
            "htu": self.url,
            "iat": int(self.h.clock.now()),
        }
        if self.ath:
            claims["ath"] = self.ath
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def header(self, key: Key | None = None, alg: str = "ES256", **overrides: Any) -> dict[str, Any]:
        header: dict[str, Any] = {"typ": "dpop+jwt", "alg": alg, "jwk": public_jwk(key or self.key)}
        header.update(overrides)
        return {k: v for k, v in header.items() if v is not None}

    def proof(self, key: Key | None = None, alg: str = "ES256", **claims: Any) -> str:
        return make_proof(
            key or self.key,
            alg,
            self.method,
            self.url,
            ath=self.ath,
            now=self.h.clock.now(),
            extra_claims=claims,
        )

    def signed(
        self, header: dict[str, Any] | bytes, payload: dict[str, Any] | bytes, key: Key | None = None
    ) -> str:
        alg = header["alg"] if isinstance(header, dict) else "ES256"
        return sign_parts(key or self.key, alg, header, payload)

    def raw_claim(self, name: str, raw: str) -> bytes:
        """The claims as JSON text with ``name`` written verbatim as ``raw``."""
        rest = {k: v for k, v in self.claims().items() if k != name}
        return (json.dumps(rest)[:-1] + f', "{name}": {raw}}}').encode()

    async def send(self, *proofs: str) -> httpx.Response:
        # Header values go as bytes: a mutated proof may hold characters httpx would not encode.
        headers: list[tuple[str, str | bytes]] = [*self.auth.items(), *(("DPoP", p.encode()) for p in proofs)]
        if self.access_token is None:
            return await self.h.client.post(
                "/token", data={"grant_type": "client_credentials"}, headers=headers
            )
        headers.append(("Authorization", "DPoP " + self.access_token))
        return await self.h.client.get(self.url.removeprefix(ISSUER), headers=headers)

    def refused_properly(self, response: httpx.Response) -> str | None:
        """None when ``response`` is this target's invalid_dpop_proof refusal, else what it was."""
        if self.access_token is None:
            ok = (
                response.status_code == 400
                and _error(response) == "invalid_dpop_proof"
                and response.headers.get("cache-control") == "no-store"
            )
            return None if ok else brief(response)
        params = challenge_params(response, "DPoP") or {}
        if response.status_code == 401 and params.get("error") == "invalid_dpop_proof":
            return None
        return f"{response.status_code} {response.headers.get_list('www-authenticate')}"


def _error(response: httpx.Response) -> object:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("error") if isinstance(body, dict) else None


@pytest.fixture(params=["/token", "/users/me"])
async def target(request: pytest.FixtureRequest, harness_factory: Factory) -> Target:
    h: AppHarness = await harness_factory(signing_alg="EdDSA")
    await h.add_user()
    secret = await h.add_service_client("svc")
    key = new_key("ES256")
    if request.param == "/token":
        return Target(h, key, "POST", TOKEN_URL, None, basic("svc", secret))
    proof = make_proof(key, "ES256", "POST", TOKEN_URL, now=h.clock.now())
    form = {"grant_type": "password", "username": "alice", "password": "correct horse"}
    response = await h.client.post("/token", data=form, headers={"DPoP": proof})
    assert response.status_code == 200, response.text
    access = response.json()["access_token"]
    assert claims_of(access).get("cnf") == {"jkt": thumbprint(key)}, (
        "the token endpoint did not bind the token"
    )
    return Target(h, key, "GET", ME_URL, access, {})


def _other_url(t: Target, **change: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(t.url)._replace(**change)
    return urlunsplit(parts)


def _corpus(t: Target) -> dict[str, list[str]]:
    """Name -> the DPoP header values of one request; every one must be refused."""
    now = int(t.h.clock.now())
    other_method = "GET" if t.method == "POST" else "POST"
    other_path = "/revoke" if t.access_token is None else "/userinfo"
    ec_private = {**public_jwk(t.key), "d": t.key.as_dict(private=True)["d"]}
    rsa = new_key("RS256")
    rsa_private = rsa.as_dict(private=True)
    oct_jwk = {"kty": "oct", "k": b64(b"k" * 32)}
    p384 = ec_p384_key()
    weak = rsa_1024_key()
    good = t.proof()
    head, body, signature = good.split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    claims = t.claims()
    corpus: dict[str, list[str]] = {
        # the request it names
        "htm of another method": [t.proof(htm=other_method)],
        "htm in lower case": [t.proof(htm=t.method.lower())],
        "htm missing": [t.signed(t.header(), t.claims(htm=None))],
        "htu of another path": [t.proof(htu=ISSUER + other_path)],
        "htu on another port": [t.proof(htu=_other_url(t, netloc="127.0.0.1:9001"))],
        "htu on another host": [t.proof(htu=_other_url(t, netloc="localhost:9000"))],
        "htu with another scheme": [t.proof(htu=_other_url(t, scheme="https"))],
        "htu with a trailing slash": [t.proof(htu=t.url + "/")],
        "htu relative": [t.proof(htu=t.url.removeprefix(ISSUER))],
        "htu with userinfo": [t.proof(htu=t.url.replace("http://", "http://user@"))],
        "htu not a string": [t.proof(htu=["x"])],
        "htu missing": [t.signed(t.header(), t.claims(htu=None))],
        # its age
        "iat stale": [t.proof(iat=now - SKEW - 10)],
        "iat in the future": [t.proof(iat=now + SKEW + 10)],
        "iat missing": [t.signed(t.header(), t.claims(iat=None))],
        "iat a string": [t.proof(iat=str(now))],
        "iat true": [t.proof(iat=True)],
        "iat NaN": [t.signed(t.header(), t.raw_claim("iat", "NaN"))],
        "iat Infinity": [t.signed(t.header(), t.raw_claim("iat", "Infinity"))],
        "iat 1e400": [t.signed(t.header(), t.raw_claim("iat", "1e400"))],
        "iat 10**30": [t.signed(t.header(), t.raw_claim("iat", str(10**30)))],
        "iat 5000 digits": [t.signed(t.header(), t.raw_claim("iat", "9" * 5000))],
        "iat negative": [t.proof(iat=-now)],
        # its jti
        "jti missing": [t.signed(t.header(), t.claims(jti=None))],
        "jti empty": [t.proof(jti="")],
        "jti a number": [t.proof(jti=12345)],
        "jti too long": [t.proof(jti="j" * 257)],
        # its key
        "jwk with EC d": [t.signed(t.header(jwk=ec_private), t.claims())],
        "jwk with RSA d p q": [t.signed(t.header(rsa, "RS256", jwk=rsa_private), t.claims(), rsa)],
        "jwk oct with k, alg ES256": [t.signed(t.header(jwk=oct_jwk), t.claims())],
        "jwk missing": [t.signed(t.header(jwk=None), t.claims())],
        "jwk a string": [t.signed(t.header(jwk=json.dumps(public_jwk(t.key))), t.claims())],
        "jwk RSA under ES256": [t.signed(t.header(jwk=public_jwk(rsa)), t.claims())],
        "jwk of another key": [t.signed(t.header(jwk=public_jwk(new_key("ES256"))), t.claims())],
        "jwk alg member not the header's": [
            t.signed(t.header(jwk={**public_jwk(t.key), "alg": "RS256"}), t.claims())
        ],
        "RSA 1024 key": [t.signed(t.header(weak, "RS256"), t.claims(), weak)],
        "EC P-384 key, ES384": [_es384(t, p384)],
        "EC P-384 key under ES256": [t.signed(t.header(jwk=public_jwk(p384)), t.claims())],
        "bad signature": [f"{head}.{body}.{flipped}"],
        "no signature": [f"{head}.{body}."],
        # its algorithm
        "alg none": [forged("none", t.header(), claims)],
        "alg none, capitalised": [forged("None", t.header(), claims)],
        "alg HS256 with the EC jwk": [forged("HS256", t.header(), claims)],
        "alg HS256 with an oct jwk": [forged("HS256", t.header(jwk=oct_jwk), claims, b"k" * 32)],
        "alg missing": [sign_parts(t.key, "ES256", t.header(alg=None), t.claims())],
        # its header members
        "typ missing": [t.signed(t.header(typ=None), t.claims())],
        "typ JWT": [t.signed(t.header(typ="JWT"), t.claims())],
        "typ at+jwt": [t.signed(t.header(typ="at+jwt"), t.claims())],
        "typ application/dpop+jwt": [t.signed(t.header(typ="application/dpop+jwt"), t.claims())],
        "jku": [t.signed(t.header(jku=ISSUER + "/.well-known/jwks.json"), t.claims())],
        "x5u": [t.signed(t.header(x5u=ISSUER + "/cert.pem"), t.claims())],
        "x5c": [t.signed(t.header(x5c=[base64.b64encode(b"not a certificate").decode()]), t.claims())],
        "crit": [t.signed(t.header(crit=["exp"], exp=now + 60), t.claims())],
        "b64 false": [t.signed(t.header(b64=False, crit=["b64"]), t.claims())],
        "zip": [t.signed(t.header(zip="DEF"), t.claims())],
        "duplicate alg in the header": [
            t.signed(json.dumps(t.header())[:-1].encode() + b', "alg": "none"}', t.claims())
        ],
        "header not JSON": [t.signed(b"{not json", t.claims())],
        "header a JSON array": [b64(b"[1]") + "." + body + "." + signature],
        # its size and shape
        "proof over 8 KB": [t.proof(pad="p" * 9000)],
        "JOSE header of 6 KB": [t.signed(t.header(pad="p" * 6000), t.claims())],
        "64 KB header value": ["a" * 65536],
        "two DPoP headers": [t.proof(), t.proof()],
        "empty DPoP header": [""],
        "two segments": [f"{head}.{body}"],
        "four segments": [f"{good}.{signature}"],
        "five segments (JWE shape)": [f"{head}.{body}.{body}.{body}.{signature}"],
        "not base64url": [f"{head}.{body}!.{signature}"],
        "non-ASCII": ["é" + good],
        "payload not JSON": [t.signed(t.header(), b"not json")],
        "payload a JSON array": [t.signed(t.header(), b'["htm", "htu"]')],
        "payload a JSON string": [t.signed(t.header(), b'"claims"')],
        "payload with a duplicate htu": [
            t.signed(t.header(), json.dumps(claims)[:-1].encode() + b', "htu": "https://evil.example/"}')
        ],
        "payload empty": [t.signed(t.header(), b"")],
    }
    if t.access_token is not None:
        corpus |= {
            "ath of another token": [t.proof(ath=access_token_hash(t.access_token + "x"))],
            "ath missing": [t.signed(t.header(), t.claims(ath=None))],
            "ath not base64url of SHA-256": [t.proof(ath=t.access_token[:43])],
            "ath padded": [t.proof(ath=t.ath + "=")],
            "ath a number": [t.proof(ath=1)],
        }
    return corpus


def _es384(t: Target, key: Key) -> str:
    """A proof by a P-384 key as ES384 (joserfc's default registry signs it; DPoP refuses it)."""
    header = t.header(key, "ES384")
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(t.claims()).encode())
    signature = JWSRegistry(algorithms=["ES384"]).get_alg("ES384").sign(signing_input.encode(), key)
    return signing_input + "." + b64(signature)


async def test_every_proof_of_the_corpus_is_refused_with_the_right_error(target: Target) -> None:
    t = target
    wrong: list[str] = []
    for name, proofs in _corpus(t).items():
        response = await t.send(*proofs)
        if response.status_code >= 500:
            wrong.append(f"{name}: {response.status_code} (a server error)")
        elif name in HEADER_TOO_LARGE and response.status_code == 431:
            continue  # CONTRACT.md, HTTP: oversized headers -> 431 (before any proof check)
        elif name == "two DPoP headers" and t.access_token is not None:
            # A malformed request at a resource: 400 invalid_request, as authsvc.verifier answers.
            params = challenge_params(response, "DPoP") or {}
            if response.status_code != 400 or params.get("error") != "invalid_request":
                wrong.append(f"{name}: {brief(response)}")
        elif (problem := t.refused_properly(response)) is not None:
            wrong.append(f"{name}: {problem}")
        # A good proof right after: the refusal did not break anything for the next request.
    control = await t.send(t.proof())
    assert control.status_code == 200, f"the valid proof was refused: {brief(control)}"
    assert not wrong, f"{t.method} {t.url}:\n  " + "\n  ".join(wrong)


async def test_every_alg_is_accepted_and_the_htu_compared_without_query_and_fragment(target: Target) -> None:
    """The positive side of the corpus: what RFC 9449 §4.3 says must match does."""
    t = target
    refused: list[str] = []
    cases: dict[str, str] = {
        "htu with a query": t.proof(htu=t.url + "?a=1&b=2"),
        "htu with a fragment": t.proof(htu=t.url + "#frag"),
        "htu with the scheme and host in capitals": t.proof(htu=t.url.replace("http://", "HTTP://")),
        "iat inside the skew, behind": t.proof(iat=int(t.h.clock.now()) - SKEW + 5),
        "iat inside the skew, ahead": t.proof(iat=int(t.h.clock.now()) + SKEW - 5),
        "an unrequested nonce claim": t.proof(nonce="client-made"),
        "a kid in the header": t.signed(t.header(kid="k1"), t.claims()),
    }
    if t.access_token is None:  # the resource's token is bound to one ES256 key
        for alg in ALGS:
            cases[f"alg {alg}"] = make_proof(new_key(alg), alg, t.method, t.url, now=t.h.clock.now())
    for name, proof in cases.items():
        response = await t.send(proof)
        if response.status_code != 200:
            refused.append(f"{name}: {brief(response)} {response.headers.get_list('www-authenticate')}")
    assert not refused, f"{t.method} {t.url}:\n  " + "\n  ".join(refused)


async def test_a_replayed_jti_is_refused(target: Target) -> None:
    t = target
    proof = t.proof()
    first = await t.send(proof)
    assert first.status_code == 200, brief(first)
    second = await t.send(proof)
    assert t.refused_properly(second) is None, f"the replay got {t.refused_properly(second)}"
    # The same jti in a new proof (another iat) by the same key is a replay too.
    jti = json.loads(base64.urlsafe_b64decode(proof.split(".")[1] + "==="))["jti"]
    t.h.clock.advance(1)
    again = await t.send(t.proof(jti=jti))
    assert t.refused_properly(again) is None, f"the same jti in a new proof got {t.refused_properly(again)}"


async def test_replays_are_refused_on_both_databases_with_the_longest_jti(
    db_harness_factory: Factory,
) -> None:
    """The replay store (client_assertions under "dpop:<jkt>") on SQLite and PostgreSQL, with a
    jti of the largest length spec/dpop.md allows (256) next to a short one."""
    h: AppHarness = await db_harness_factory(signing_alg="EdDSA")
    secret = await h.add_service_client("svc")
    key = new_key("ES256")
    for jti in ("j" * 256, "x"):
        proof = make_proof(key, "ES256", "POST", TOKEN_URL, jti=jti, now=h.clock.now())
        answers = []
        for _ in range(2):
            response = await h.client.post(
                "/token",
                data={"grant_type": "client_credentials"},
                headers={**basic("svc", secret), "DPoP": proof},
            )
            answers.append((response.status_code, _error(response)))
        assert answers == [(200, None), (400, "invalid_dpop_proof")], (len(jti), answers)


async def test_the_expected_htu_is_the_issuers_not_the_host_header(harness_factory: Factory) -> None:
    """spec/dpop.md: at authsvc the htu is the issuer + path; RFC 3986 normalisation of the default port."""
    h: AppHarness = await harness_factory(issuer="https://auth.example", signing_alg="EdDSA")
    secret = await h.add_service_client("svc")
    key = new_key("ES256")
    outcomes = {}
    for htu in (
        "https://auth.example/token",
        "https://auth.example:443/token",
        "HTTPS://Auth.Example/token",
        ISSUER + "/token",  # where the request was actually sent (the Host header)
        "http://auth.example/token",
        "https://auth.example:8443/token",
    ):
        proof = make_proof(key, "ES256", "POST", htu, now=h.clock.now())
        response = await h.client.post(
            "/token",
            data={"grant_type": "client_credentials"},
            headers={**basic("svc", secret), "DPoP": proof},
        )
        outcomes[htu] = response.status_code, _error(response)
    assert outcomes == {
        "https://auth.example/token": (200, None),
        "https://auth.example:443/token": (200, None),
        "HTTPS://Auth.Example/token": (200, None),
        ISSUER + "/token": (400, "invalid_dpop_proof"),
        "http://auth.example/token": (400, "invalid_dpop_proof"),
        "https://auth.example:8443/token": (400, "invalid_dpop_proof"),
    }


# --- hypothesis: mutated proofs are never a server error -----------------------------------------
_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_mutation = st.tuples(
    st.sampled_from(["replace", "delete", "insert", "truncate", "reverse segments"]),
    st.floats(min_value=0, max_value=1, exclude_max=True),
    st.sampled_from(_B64URL + ".=+/ %~é"),
)


def _mutate(proof: str, how: str, where: float, char: str) -> str:
    i = int(where * len(proof))
    if how == "replace":
        return proof[:i] + char + proof[i + 1 :]
    if how == "delete":
        return proof[:i] + proof[i + 1 :]
    if how == "insert":
        return proof[:i] + char + proof[i:]
    if how == "truncate":
        return proof[:i]
    return ".".join(reversed(proof.split(".")))


def _ok_or_refused(t: Target, response: httpx.Response) -> str | None:
    if response.status_code == 200:
        return None
    return t.refused_properly(response)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=st.lists(_mutation, min_size=1, max_size=3))
async def test_mutated_proofs_are_refused_never_a_server_error(
    target: Target, mutations: list[tuple[str, float, str]]
) -> None:
    t = target
    proof = t.proof()
    for how, where, char in mutations:
        proof = _mutate(proof, how, where, char)
    response = await t.send(proof)
    assert response.status_code < 500, (mutations, response.status_code)
    assert _ok_or_refused(t, response) is None, (mutations, _ok_or_refused(t, response))


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
_claim_names = st.sampled_from(["jti", "htm", "htu", "iat", "ath", "nonce", "exp", "extra"])
_header_names = st.sampled_from(["typ", "alg", "jwk", "kid", "crit", "cty", "extra"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    claim_changes=st.dictionaries(_claim_names, _json, max_size=2),
    header_changes=st.dictionaries(_header_names, _json, max_size=2),
)
async def test_proofs_with_arbitrary_members_are_refused_never_a_server_error(
    target: Target, claim_changes: dict[str, Any], header_changes: dict[str, Any]
) -> None:
    t = target
    header = {**t.header(), **header_changes}
    header["alg"] = "ES256" if not isinstance(header.get("alg"), str) else header["alg"]
    payload = {**t.claims(), **claim_changes}
    try:
        proof = sign_parts(t.key, "ES256", json.dumps(header).encode(), json.dumps(payload).encode())
    except Exception:  # the signing library cannot express this header: nothing to send
        return
    response = await t.send(proof)
    assert response.status_code < 500, (header_changes, claim_changes, response.status_code)
    assert _ok_or_refused(t, response) is None, (header_changes, claim_changes, _ok_or_refused(t, response))
