"""What the browser sign-in tests share: registering users and browser clients, checking ID tokens.

Registration goes through the CLI (the public surface: ``authsvc clients add ...
--grant authorization_code --redirect-uri ...``), and ID tokens are checked the
way a relying party would, with PyJWT and the published JWKS; ``at_hash`` is
computed here, independently of the service (OpenID Connect Core §3.1.3.6; the
contract's SHA-512 for EdDSA, as node-oidc-provider does).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import jwt

from tests.trust_support import cli_ok, client_secret

__all__ = [
    "OIDC_SCOPES",
    "PASSWORD",
    "add_browser_client",
    "add_user",
    "at_hash",
    "verify_id_token",
]

PASSWORD = "correct horse battery"
OIDC_SCOPES = "openid profile email offline_access"


def add_user(env: dict[str, str], name: str = "alice", password: str = PASSWORD, **extra: str) -> str:
    """``users add`` with an e-mail address and a full name; the CLI's output line."""
    return cli_ok(
        env,
        "users",
        "add",
        name,
        "--password-stdin",
        "--scope",
        extra.get("scope", "read write"),
        "--email",
        extra.get("email", f"{name}@example.com"),
        "--full-name",
        extra.get("full_name", f"{name.title()} Example"),
        input=password + "\n",
    )


def add_browser_client(
    env: dict[str, str],
    client_id: str,
    *redirect_uris: str,
    kind: str = "confidential",
    refresh: bool = True,
    scope: str = OIDC_SCOPES,
    first_party: bool = False,
    jwks: str | None = None,
    extra: tuple[str, ...] = (),
) -> str | None:
    """``clients add ID --grant authorization_code ...``; the generated secret of a confidential client.

    ``kind``: ``public``, ``confidential`` (a generated secret) or ``jwks`` (the file ``jwks``).
    """
    args = ["clients", "add", client_id, "--grant", "authorization_code"]
    if refresh:
        args += ["--grant", "refresh_token"]
    if kind == "public":
        args.append("--public")
    elif kind == "jwks":
        assert jwks is not None
        args += ["--jwks", jwks]
    for uri in redirect_uris:
        args += ["--redirect-uri", uri]
    if scope:
        args += ["--scope", scope]
    if first_party:
        args.append("--first-party")
    args += list(extra)
    out = cli_ok(env, *args)
    return client_secret(out) if kind == "confidential" else None


def at_hash(access_token: str, alg: str) -> str:
    """OIDC Core §3.1.3.6: the left half of the hash of the access token's ASCII, base64url."""
    digest = (hashlib.sha512 if alg == "EdDSA" else hashlib.sha256)(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


def verify_id_token(
    issuer: str, id_token: str, *, client_id: str, alg: str, jwks_uri: str | None = None
) -> dict[str, Any]:
    """An ID token checked as a relying party does: signature by the JWKS key of its kid, the
    expected algorithm only, iss, aud, exp, iat; the header's typ and kid. Returns its claims."""
    header = jwt.get_unverified_header(id_token)
    assert header.get("typ") == "JWT", header
    assert header.get("alg") == alg, header
    assert header.get("kid"), header
    key = jwt.PyJWKClient(jwks_uri or issuer + "/.well-known/jwks.json").get_signing_key_from_jwt(id_token)
    claims: dict[str, Any] = jwt.decode(
        id_token,
        key,
        algorithms=[alg],
        audience=client_id,
        issuer=issuer,
        options={"require": ["iss", "sub", "aud", "exp", "iat", "auth_time"]},
    )
    return claims
