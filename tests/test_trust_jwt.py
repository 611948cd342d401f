"""private_key_jwt keys and numeric claims under attack (issue #13, finding 11).

- ``clients add --jwks`` refuses RSA keys under 2048 bits and EC keys that are
  not P-256; a client registered before that rule (its row written straight
  into the database) cannot authenticate with a 1024-bit key.
- Every numeric claim out of range is a 4xx, never a 5xx: client assertions
  at ``/token``, ``/revoke``, ``/introspect``; access tokens at ``/users/me``,
  ``/introspect``, ``/revoke``; refresh tokens at ``/token``. The service's
  own tokens are forged with its own key, read from ``AUTHSVC_KEYS_DIR``
  (PKCS#8 PEM) and matched to the ``kid`` (RFC 7638 thumbprint).
"""

from __future__ import annotations

import base64
import json
import secrets
import sqlite3
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jws
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OKPKey, RSAKey

from tests.support import ISSUER, AppHarness, run_cli
from tests.trust_support import (
    add_confidential_client,
    assert_one_line_error,
    brief,
    cli_env,
    cli_ok,
)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
HUGE = "1" + "0" * 400  # an integer literal no IEEE double can hold
PASSWORD = "alice-password-1"
# These tests fail client authentication on purpose, many times: keep the per-address limit out of the way.
NO_LIMITS = {"login_max_per_user": 100_000, "login_max_per_address": 100_000}

# (claim, raw JSON value): each must be refused, whatever else the token holds
OUT_OF_RANGE = [
    ("exp", HUGE),
    ("exp", "-" + HUGE),
    ("iat", HUGE),
    ("iat", "-" + HUGE),
    ("iat", "1e308"),
    ("nbf", HUGE),
    ("nbf", "-" + HUGE),
    ("nbf", "1e308"),
]


def _unb64(segment: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def _raw_payload(claims: dict[str, Any], name: str, raw: str) -> bytes:
    """The claims as JSON text with ``name`` written verbatim as ``raw``."""
    rest = {k: v for k, v in claims.items() if k != name}
    return (json.dumps(rest)[:-1] + f', "{name}": {raw}}}').encode()


def _sign(key: Any, header: dict[str, Any], payload: bytes) -> str:
    """A compact JWS over exactly these bytes (joserfc signs; the payload is not re-encoded)."""
    return jws.serialize_compact(header, payload, key, algorithms=[header["alg"]])


def _rsa_1024() -> RSAKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with warnings.catch_warnings():  # joserfc rightly warns about the size: that is the point
        warnings.simplefilter("ignore", SecurityWarning)
        return RSAKey.import_key(pem)


def _jwks_file(tmp_path: Path, name: str, *keys: dict[str, Any]) -> Path:
    path = tmp_path / f"{name}.jwks.json"
    path.write_text(json.dumps({"keys": list(keys)}))
    return path


def _public(key: Any, kid: str = "k1", **extra: str) -> dict[str, Any]:
    return {**key.as_dict(private=False), "kid": kid, "use": "sig", **extra}


# --- registration --------------------------------------------------------------------------------
def test_clients_add_refuses_weak_and_foreign_curve_keys(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    cli_ok(env, "db", "upgrade")
    refused = {
        "rsa-1024": _public(_rsa_1024(), alg="RS256"),
        "ec-p384": _public(ECKey.generate_key("P-384")),
        "ec-secp256k1": _public(ECKey.generate_key("secp256k1")),
    }
    accepted = 0
    for name, jwk in refused.items():
        result = run_cli("clients", "add", name, "--jwks", str(_jwks_file(tmp_path, name, jwk)), env=env)
        if result.returncode == 0:
            accepted += 1
            continue
        assert_one_line_error(result)
    assert not accepted, f"{accepted} of {len(refused)} weak or foreign-curve keys were registered"
    # a P-256 key is fine
    good = _jwks_file(tmp_path, "good", _public(ECKey.generate_key("P-256")))
    cli_ok(env, "clients", "add", "ec-p256", "--jwks", str(good))


async def test_an_old_registration_with_a_1024_bit_key_cannot_authenticate(
    harness_factory: Callable[..., Any], tmp_path: Path
) -> None:
    h: AppHarness = await harness_factory(**NO_LIMITS)
    env = cli_env(tmp_path)
    good = _jwks_file(tmp_path, "good", _public(RSAKey.generate_key(2048), alg="RS256"))
    cli_ok(env, "clients", "add", "legacy", "--jwks", str(good))
    weak = _rsa_1024()
    conn = sqlite3.connect(tmp_path / "authsvc.db")
    with conn:  # as if registered before the rule existed
        conn.execute(
            "UPDATE clients SET jwks = ? WHERE client_id = 'legacy'",
            (json.dumps({"keys": [_public(weak, alg="RS256")]}),),
        )
    conn.close()
    now = int(h.clock.now())
    claims = {"iss": "legacy", "sub": "legacy", "aud": ISSUER + "/token", "iat": now, "exp": now + 300}
    failures = []
    for endpoint in ("/token", "/introspect"):
        claims["jti"] = secrets.token_urlsafe(16)
        assertion = _sign(weak, {"alg": "RS256", "kid": "k1"}, json.dumps(claims).encode())
        form = {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
        form.update({"grant_type": "client_credentials"} if endpoint == "/token" else {"token": "x"})
        with warnings.catch_warnings():  # a deployed server does not turn joserfc's warning into an error
            warnings.simplefilter("ignore", SecurityWarning)
            r = await h.client.post(endpoint, data=form)
        if r.status_code != 401 or r.json().get("error") != "invalid_client":
            failures.append(f"{endpoint}: {brief(r)}")
    assert not failures, f"a 1024-bit RSA key authenticated: {failures}"


# --- numeric claims in client assertions ---------------------------------------------------------
@pytest.fixture
async def jwt_client(harness_factory: Callable[..., Any], tmp_path: Path) -> tuple[AppHarness, ECKey]:
    """A harness with ``jwt-svc``, a private_key_jwt client registered through the CLI."""
    h: AppHarness = await harness_factory(**NO_LIMITS)
    key = ECKey.generate_key("P-256")
    jwks = _jwks_file(tmp_path, "jwt-svc", _public(key, alg="ES256"))
    cli_ok(cli_env(tmp_path), "clients", "add", "jwt-svc", "--jwks", str(jwks))
    return h, key


def _assertion_claims(now: float) -> dict[str, Any]:
    return {
        "iss": "jwt-svc",
        "sub": "jwt-svc",
        "aud": ISSUER + "/token",
        "iat": int(now),
        "exp": int(now) + 300,
        "jti": secrets.token_urlsafe(16),
    }


async def _with_assertion(h: AppHarness, endpoint: str, assertion: str) -> httpx.Response:
    form = {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
    form.update({"grant_type": "client_credentials"} if endpoint == "/token" else {"token": "x"})
    return await h.client.post(endpoint, data=form)


@pytest.mark.parametrize("endpoint", ["/token", "/revoke", "/introspect"])
async def test_out_of_range_numbers_in_a_client_assertion_are_4xx(
    jwt_client: tuple[AppHarness, ECKey], endpoint: str
) -> None:
    h, key = jwt_client
    wrong = []
    for name, raw in OUT_OF_RANGE:
        payload = _raw_payload(_assertion_claims(h.clock.now()), name, raw)
        r = await _with_assertion(h, endpoint, _sign(key, {"alg": "ES256", "kid": "k1"}, payload))
        if not 400 <= r.status_code < 500:
            wrong.append(f"{name}={raw[:12]}{'…' if len(raw) > 12 else ''}: {brief(r)}")
    assert not wrong, f"{endpoint}: {wrong}"


_numbers = st.one_of(
    st.integers(min_value=-(10**500), max_value=10**500).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["1e999", "-1e999", "1E400", "-0", "0.0", "9" * 5000, "1e-400", "2e308"]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["exp", "iat", "nbf"]), raw=_numbers)
async def test_any_number_in_a_client_assertion_is_never_a_server_error(
    jwt_client: tuple[AppHarness, ECKey], name: str, raw: str
) -> None:
    h, key = jwt_client
    payload = _raw_payload(_assertion_claims(h.clock.now()), name, raw)
    r = await _with_assertion(h, "/token", _sign(key, {"alg": "ES256", "kid": "k1"}, payload))
    assert r.status_code in (200, 400, 401), (name, f"{raw[:20]}… ({len(raw)} chars)", brief(r))


# --- numeric claims in the service's own tokens --------------------------------------------------
def _server_key(keys_dir: Path, kid: str) -> Any:
    """The service's private key whose RFC 7638 thumbprint is ``kid``, from its PEM files."""
    for path in sorted(keys_dir.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if b"PRIVATE KEY" not in data:
            continue
        for kind in (RSAKey, ECKey, OKPKey):
            try:
                key = kind.import_key(data)
            except Exception:
                continue
            if key.thumbprint() == kid:
                return key
    raise AssertionError(f"no private key file in {keys_dir} has the thumbprint {kid}")


@pytest.fixture
async def forger(harness_factory: Callable[..., Any], tmp_path: Path) -> dict[str, Any]:
    """A harness, a real login of alice, an introspecting client, and the signing key."""
    h: AppHarness = await harness_factory(**NO_LIMITS)
    await h.add_user("alice", PASSWORD)
    inspector = ("inspector", add_confidential_client(cli_env(tmp_path), "inspector"))
    login = await h.login("alice", PASSWORD)
    assert login.status_code == 200, brief(login)
    tokens = login.json()
    header = _unb64(tokens["access_token"].split(".")[0])
    key = _server_key(tmp_path / "keys", header["kid"])
    return {"h": h, "tokens": tokens, "key": key, "inspector": inspector}


def _forge(forger: dict[str, Any], kind: str, name: str, raw: str) -> str:
    token = forger["tokens"][kind]
    header_segment, payload_segment, _ = token.split(".")
    claims = _unb64(payload_segment)
    claims["jti"] = secrets.token_urlsafe(16)
    return _sign(forger["key"], _unb64(header_segment), _raw_payload(claims, name, raw))


async def test_out_of_range_numbers_in_our_own_tokens_are_refused_not_500(forger: dict[str, Any]) -> None:
    h: AppHarness = forger["h"]
    wrong = []
    for name, raw in OUT_OF_RANGE:
        label = f"{name}={raw[:12]}{'…' if len(raw) > 12 else ''}"
        access = _forge(forger, "access_token", name, raw)
        me = await h.me(access)
        if me.status_code != 401:
            wrong.append(f"/users/me {label}: {brief(me)}")
        seen = await h.client.post("/introspect", data={"token": access}, auth=forger["inspector"])
        if seen.status_code != 200 or seen.json() != {"active": False}:
            wrong.append(f"/introspect {label}: {brief(seen)}")
        revoked = await h.client.post("/revoke", data={"token": access, "client_id": "cli"})
        if revoked.status_code >= 500:
            wrong.append(f"/revoke {label}: {brief(revoked)}")
        refresh = _forge(forger, "refresh_token", name, raw)
        r = await h.refresh(refresh)
        if r.status_code != 400 or r.json().get("error") != "invalid_grant":
            wrong.append(f"/token refresh {label}: {brief(r)}")
    assert not wrong, "\n".join(wrong)
