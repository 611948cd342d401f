"""Hostile tokens: every one is refused with InvalidToken, never another exception.

The corpus runs through both the async and the sync verifier (they share the
checks, this proves it), and hypothesis tampers single characters of valid
RS256 and EdDSA tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from verifier_support import DELETE, FakeClock, Minter, Signer, b64, default_claims, sign_raw

from authsvc.verifier import InvalidToken, SyncVerifier, Verifier

# (id, builder, expected reason or None for "any reason"). Builders get a
# namespace of signers, the minter and the clock.
Builder = Callable[[dict[str, Any]], Any]


def _hs256_with_public_pem(ns: dict[str, Any]) -> str:
    """The classic alg-confusion attack: the RSA public key as an HMAC secret."""
    rsa: Signer = ns["rsa"]
    pem = rsa.key.raw_value.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64({"alg": "HS256", "kid": rsa.kid, "typ": "at+jwt"})
    payload = b64(default_claims(ns["clock"].now))
    mac = hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(mac)}"


def _alg_none(ns: dict[str, Any], signature: str = "") -> str:
    header = b64({"alg": "none", "kid": ns["rsa"].kid, "typ": "at+jwt"})
    return f"{header}.{b64(default_claims(ns['clock'].now))}.{signature}"


def _valid_header(ns: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"alg": "RS256", "kid": ns["rsa"].kid, "typ": "at+jwt", **extra}


def _signed(ns: dict[str, Any], header: Any = None, payload: Any = None) -> str:
    """A real RS256 signature by the published key over an arbitrary header/payload."""
    header = _valid_header(ns) if header is None else header
    payload = default_claims(ns["clock"].now) if payload is None else payload
    return sign_raw(ns["rsa"], header, payload)


def _claims(ns: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return default_claims(ns["clock"].now, **overrides)


def _raw_claims(ns: dict[str, Any], **raw: str) -> str:
    """Valid claims as JSON text, with members appended verbatim (duplicates allowed)."""
    text = json.dumps(_claims(ns, **dict.fromkeys(raw, DELETE)))
    return text[:-1] + "".join(f', "{name}": {value}' for name, value in raw.items()) + "}"


def _embedded_jwk(ns: dict[str, Any], kid: str) -> str:
    """Signed by an attacker key that the header itself carries."""
    attacker: Signer = ns["foreign_ed"]
    header = {"alg": "EdDSA", "kid": kid, "typ": "at+jwt", "jwk": attacker.jwk}
    return sign_raw(attacker, header, _claims(ns))


def _replace_segment(token: str, index: int, value: str) -> str:
    parts = token.split(".")
    parts[index] = value
    return ".".join(parts)


CORPUS: list[tuple[str, Builder, str | None]] = [
    ("alg-none-empty-signature", _alg_none, "malformed"),
    ("alg-none-with-signature", lambda ns: _alg_none(ns, "c2ln"), "unsupported_algorithm"),
    ("alg-None-capitalised", lambda ns: _signed(ns, _valid_header(ns, alg="None")), "unsupported_algorithm"),
    ("hs256-public-pem-secret", _hs256_with_public_pem, "unsupported_algorithm"),
    ("alg-missing", lambda ns: _signed(ns, {"kid": ns["rsa"].kid, "typ": "at+jwt"}), "malformed"),
    ("alg-not-string", lambda ns: _signed(ns, _valid_header(ns, alg=["RS256"])), "unsupported_algorithm"),
    ("alg-mismatch-key", lambda ns: _signed(ns, _valid_header(ns, alg="EdDSA")), "unsupported_algorithm"),
    (
        "foreign-key-real-kid",
        lambda ns: ns["mint"](ns["foreign"], header={"kid": ns["rsa"].kid}),
        "bad_signature",
    ),
    ("foreign-key-own-kid", lambda ns: ns["mint"](ns["foreign"]), "no_matching_key"),
    ("embedded-jwk", lambda ns: _embedded_jwk(ns, ns["foreign_ed"].kid), "malformed"),
    ("embedded-jwk-real-kid", lambda ns: _embedded_jwk(ns, ns["rsa"].kid), "malformed"),
    (
        "embedded-rsa-jwk",
        lambda ns: sign_raw(ns["foreign"], _valid_header(ns, jwk=ns["foreign"].jwk), _claims(ns)),
        None,
    ),
    ("jku", lambda ns: _signed(ns, _valid_header(ns, jku="https://evil.test/jwks.json")), "malformed"),
    ("x5u", lambda ns: _signed(ns, _valid_header(ns, x5u="https://evil.test/cert.pem")), "malformed"),
    ("x5c", lambda ns: _signed(ns, _valid_header(ns, x5c=["MIIB"])), "malformed"),
    ("crit-unknown", lambda ns: _signed(ns, _valid_header(ns, crit=["exp"], exp=1)), "malformed"),
    ("crit-empty", lambda ns: _signed(ns, _valid_header(ns, crit=[])), "malformed"),
    ("b64-false", lambda ns: _signed(ns, _valid_header(ns, b64=False, crit=["b64"])), "malformed"),
    ("unknown-header-member", lambda ns: _signed(ns, _valid_header(ns, foo=1)), "malformed"),
    ("kid-missing", lambda ns: ns["mint"](header={"kid": DELETE}), "no_matching_key"),
    ("kid-empty", lambda ns: ns["mint"](header={"kid": ""}), "no_matching_key"),
    ("kid-number", lambda ns: _signed(ns, _valid_header(ns, kid=7)), "no_matching_key"),
    ("kid-unknown", lambda ns: ns["mint"](header={"kid": "nope"}), "no_matching_key"),
    ("typ-refresh-token", lambda ns: ns["mint"](header={"typ": "rt+jwt"}), "bad_type"),
    ("typ-jwt", lambda ns: ns["mint"](header={"typ": "JWT"}), "bad_type"),
    ("typ-missing", lambda ns: ns["mint"](header={"typ": DELETE}), "bad_type"),
    ("typ-number", lambda ns: _signed(ns, _valid_header(ns, typ=1)), "bad_type"),
    ("typ-prefixed", lambda ns: ns["mint"](header={"typ": "application/at+jwt; x=1"}), "bad_type"),
    ("wrong-iss", lambda ns: ns["mint"](iss="https://evil.test"), "bad_issuer"),
    ("wrong-aud", lambda ns: ns["mint"](aud="another-api"), "bad_audience"),
    ("expired", lambda ns: ns["mint"](exp=int(ns["clock"].now) - 3600), "expired"),
    ("nbf-future", lambda ns: ns["mint"](nbf=int(ns["clock"].now) + 3600), "not_yet_valid"),
    ("iat-future", lambda ns: ns["mint"](iat=int(ns["clock"].now) + 3600), "issued_in_future"),
    ("exp-string", lambda ns: ns["mint"](exp=str(int(ns["clock"].now) + 900)), "malformed"),
    ("exp-bool", lambda ns: ns["mint"](exp=True), "malformed"),
    (
        "exp-nan",
        lambda ns: _signed(ns, payload=json.dumps(default_claims(0, exp=float("nan")))),
        "malformed",
    ),
    ("exp-1e999", lambda ns: _signed(ns, payload=_raw_claims(ns, exp="1e999")), "malformed"),
    ("exp-5000-digits", lambda ns: _signed(ns, payload=_raw_claims(ns, exp="9" * 5000)), "malformed"),
    ("exp-object", lambda ns: _signed(ns, payload=_raw_claims(ns, exp='{"$date": 1}')), "malformed"),
    (
        "duplicate-claim",
        lambda ns: _signed(ns, payload=json.dumps(_claims(ns))[:-1] + ', "aud": "x"}'),
        "malformed",
    ),
    ("payload-array", lambda ns: _signed(ns, payload=b"[1, 2]"), "malformed"),
    ("payload-not-json", lambda ns: _signed(ns, payload=b"\xff\xfe garbage"), "malformed"),
    ("payload-deep-nesting", lambda ns: _signed(ns, payload=b"[" * 2000 + b"]" * 2000), "malformed"),
    ("header-not-json", lambda ns: _replace_segment(ns["mint"](), 0, b64("not json at all")), "malformed"),
    ("header-array", lambda ns: _replace_segment(ns["mint"](), 0, b64('["alg", "kid"]')), "malformed"),
    ("header-string", lambda ns: _replace_segment(ns["mint"](), 0, b64('"alg"')), "malformed"),
    ("header-number", lambda ns: _replace_segment(ns["mint"](), 0, b64("1e999")), "malformed"),
    ("header-too-long", lambda ns: ns["mint"](header={"kid": "k" * 600}), "too_large"),
    ("truncated", lambda ns: ns["mint"]()[:-7], None),
    ("truncated-half", lambda ns: ns["mint"]()[: len(ns["mint"]()) // 2], "malformed"),
    ("two-segments", lambda ns: ns["mint"]().rsplit(".", 1)[0], "malformed"),
    ("four-segments", lambda ns: ns["mint"]() + ".AAAA", "malformed"),
    ("five-segments-jwe-like", lambda ns: "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d", "malformed"),
    ("empty-signature", lambda ns: _replace_segment(ns["mint"](), 2, ""), "malformed"),
    ("empty-payload", lambda ns: _replace_segment(ns["mint"](), 1, ""), "malformed"),
    ("non-base64", lambda ns: "!!!.@@@.###", "malformed"),
    ("padding", lambda ns: ns["mint"]() + "==", "malformed"),
    ("whitespace", lambda ns: " " + ns["mint"](), "malformed"),
    ("non-canonical-base64", lambda ns: _noncanonical(ns["mint"]()), None),
    ("oversized-1mb", lambda ns: "a" * (1024 * 1024), "too_large"),
    ("oversized-valid-shape", lambda ns: ns["mint"](pad="x" * 9000), "too_large"),
    (
        "tampered-payload",
        lambda ns: _replace_segment(ns["mint"](), 1, b64(_claims(ns, scope="admin"))),
        "bad_signature",
    ),
    ("tampered-signature", lambda ns: _flip(ns["mint"](), -10), "bad_signature"),
    ("signature-from-other-token", lambda ns: _swap_signature(ns), "bad_signature"),
    ("empty", lambda ns: "", "malformed"),
    ("dots", lambda ns: "..", "malformed"),
    ("none", lambda ns: None, "malformed"),
    ("bytes", lambda ns: ns["mint"]().encode(), "malformed"),
    ("int", lambda ns: 42, "malformed"),
    ("non-ascii", lambda ns: ns["mint"]()[:-1] + "é", "malformed"),
    ("nul", lambda ns: ns["mint"]()[:-1] + "\x00", "malformed"),
]


def _flip(token: str, index: int) -> str:
    ch = token[index]
    return token[:index] + ("A" if ch != "A" else "B") + token[index + 1 :]


def _noncanonical(token: str) -> str:
    """Same bytes, different spelling: set the unused low bits of the last character."""
    head, sig = token.rsplit(".", 1)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(sig[-1])
    return (
        f"{head}.{sig[:-1]}{alphabet[last | 1]}"
        if last % 2 == 0
        else f"{head}.{sig[:-1]}{alphabet[last & ~1]}"
    )


def _swap_signature(ns: dict[str, Any]) -> str:
    one = ns["mint"](sub="alice")
    two = ns["mint"](sub="mallory")
    return _replace_segment(two, 2, one.split(".")[2])


@pytest.fixture
def namespace(
    rsa_signer: Signer, foreign_rsa: Signer, foreign_ed: Signer, mint: Minter, clock: FakeClock
) -> dict[str, Any]:
    return {"rsa": rsa_signer, "foreign": foreign_rsa, "foreign_ed": foreign_ed, "mint": mint, "clock": clock}


@pytest.mark.parametrize(("build", "reason"), [(b, r) for _, b, r in CORPUS], ids=[c[0] for c in CORPUS])
async def test_hostile_token_async(
    verifier: Verifier, namespace: dict[str, Any], build: Builder, reason: str | None
) -> None:
    token = build(namespace)
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(token)
    assert caught.value.code == "invalid_token"
    if reason is not None:
        assert caught.value.reason == reason


@pytest.mark.parametrize(("build", "reason"), [(b, r) for _, b, r in CORPUS], ids=[c[0] for c in CORPUS])
def test_hostile_token_sync(
    make_sync_verifier: Callable[..., SyncVerifier],
    namespace: dict[str, Any],
    build: Builder,
    reason: str | None,
) -> None:
    verifier = make_sync_verifier()
    with pytest.raises(InvalidToken) as caught:
        verifier.verify(build(namespace))
    assert caught.value.code == "invalid_token"
    if reason is not None:
        assert caught.value.reason == reason


def test_noncanonical_helper_really_keeps_the_bytes(namespace: dict[str, Any]) -> None:
    import base64

    token = namespace["mint"]()
    sig, other = token.rsplit(".", 1)[1], _noncanonical(token).rsplit(".", 1)[1]
    assert sig != other
    assert base64.urlsafe_b64decode(sig + "==") == base64.urlsafe_b64decode(other + "==")


_TAMPER_CHARS = st.one_of(
    st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."),
    st.characters(),
)


@pytest.mark.parametrize("signer_name", ["rsa_signer", "ed_signer"])
def test_any_single_character_tamper_is_refused(
    signer_name: str,
    request: pytest.FixtureRequest,
    make_sync_verifier: Callable[..., SyncVerifier],
    mint: Minter,
) -> None:
    signer: Signer = request.getfixturevalue(signer_name)
    verifier = make_sync_verifier()
    token = mint(signer)
    assert verifier.verify(token)["sub"] == "user-7f3a"

    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(position=st.integers(0, len(token) - 1), replacement=_TAMPER_CHARS, delete=st.booleans())
    def check(position: int, replacement: str, delete: bool) -> None:
        if delete:
            tampered = token[:position] + token[position + 1 :]
        else:
            if replacement == token[position]:
                return
            tampered = token[:position] + replacement + token[position + 1 :]
        with pytest.raises(InvalidToken) as caught:
            verifier.verify(tampered)
        assert caught.value.code == "invalid_token"

    check()
