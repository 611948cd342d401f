"""RFC 9864's fully specified ``Ed25519`` accepted wherever ``EdDSA`` is (issue 16).

oauth4webapi (and other RFC 9864 clients) name the algorithm of an Ed25519 key
``Ed25519``, not ``EdDSA``: a client assertion so signed must authenticate
whether the client registered its key without ``alg``, as ``EdDSA`` (the only
name before RFC 9864) or as ``Ed25519``; the metadata lists both names. The
live version with oauth4webapi itself is in test_oauth4webapi_dpop.py; DPoP
proofs with ``Ed25519`` are in test_dpop_token.py and test_dpop_corpus.py.
"""

from __future__ import annotations

import pytest
from joserfc.jwk import OKPKey

from tests.support import AppHarness
from tests.test_private_key_jwt import add_jwt_client, assertion_claims, sign, with_assertion


@pytest.mark.parametrize(
    ("registered_alg", "assertion_alg"),
    [(None, "EdDSA"), (None, "Ed25519"), ("EdDSA", "EdDSA"), ("EdDSA", "Ed25519"), ("Ed25519", "Ed25519")],
)
async def test_an_ed25519_client_assertion_under_either_name_authenticates(
    harness: AppHarness, registered_alg: str | None, assertion_alg: str
) -> None:
    key = OKPKey.generate_key("Ed25519")
    await add_jwt_client(harness, key, **({"alg": registered_alg} if registered_alg else {}))
    for endpoint in ("/token", "/revoke", "/introspect"):
        assertion = sign(key, assertion_alg, assertion_claims(harness.clock.now()))
        response = await with_assertion(harness, assertion, endpoint)
        assert response.status_code == 200, (endpoint, response.status_code, response.text)


async def test_metadata_lists_both_names_for_client_assertions(harness: AppHarness) -> None:
    metadata = (await harness.client.get("/.well-known/oauth-authorization-server")).json()
    for endpoint in ("token", "revocation", "introspection"):
        algs = metadata[f"{endpoint}_endpoint_auth_signing_alg_values_supported"]
        assert {"EdDSA", "Ed25519"} <= set(algs), (endpoint, algs)
