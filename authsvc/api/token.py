"""POST /token: parse the form, authenticate the client, hand the request to its grant."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import Response

from authsvc.addresses import Network
from authsvc.api.form import read_form
from authsvc.api.peer import request_address
from authsvc.api.responses import NO_STORE, json_response
from authsvc.api.routes import Endpoint
from authsvc.api.schemas import CLIENT_AUTH, CLIENT_PARAMETERS, TOKEN_ERRORS, form_body, token_response_schema
from authsvc.client_auth import ClientAuthenticator
from authsvc.dpop import DpopError, DpopProof
from authsvc.dpop_gate import DpopGate
from authsvc.errors import (
    InvalidDpopProof,
    InvalidRequest,
    UnauthorizedClient,
    UnsupportedGrantType,
    UseDpopNonce,
)
from authsvc.grants import GRANT_TYPES, GrantRegistry, GrantRequest, token_parameters
from authsvc.metrics import Metrics

__all__ = ["ENDPOINT", "TokenEndpoint", "token_endpoint_proof"]


class TokenEndpoint:
    def __init__(
        self,
        grants: GrantRegistry,
        client_auth: ClientAuthenticator,
        trusted_proxies: Sequence[Network],
        metrics: Metrics,
        dpop: DpopGate,
    ) -> None:
        self.grants = grants
        self.client_auth = client_auth
        self.trusted_proxies = trusted_proxies
        self.metrics = metrics
        self.dpop = dpop
        # The labelled counters, looked up once: ``labels()`` validates and locks on every call.
        self.issued = {grant_type: metrics.tokens_issued.labels(grant_type) for grant_type in GRANT_TYPES}

    async def __call__(self, request: Request) -> Response:
        arrived = self.dpop.now()  # client authentication may wait on the database
        form = await read_form(request)
        grant_type = form.get("grant_type")
        if grant_type is None:
            raise InvalidRequest("The grant_type parameter is required.")
        grant = self.grants.get(grant_type)
        if grant is None:
            raise UnsupportedGrantType()
        address = request_address(request, self.trusted_proxies)
        identity = await self.client_auth.authenticate(
            request.headers.get("authorization"), form, allow_default=grant.default_client, address=address
        )
        if grant_type not in identity.client.grant_types:
            raise UnauthorizedClient()
        proof = await token_endpoint_proof(self.dpop, request, arrived)
        if proof is None and identity.client.require_dpop:
            raise InvalidDpopProof("This client must send a DPoP proof.")
        jkt = proof.jkt if proof is not None else None
        result = await grant.handle(GrantRequest(form, identity.client, address, dpop_jkt=jkt))
        (self.issued.get(grant_type) or self.metrics.tokens_issued.labels(grant_type)).inc()
        headers = NO_STORE
        nonce = self.dpop.nonce() if proof is not None else None
        if nonce is not None:
            headers = {**NO_STORE, "DPoP-Nonce": nonce}
        return json_response(result.body, headers=headers)


async def token_endpoint_proof(dpop: DpopGate, request: Request, arrived: float) -> DpopProof | None:
    """The DPoP proof of a request to /token or /par (``arrived``: ``dpop.now()`` when it came),
    as the token endpoint's errors say it."""
    try:
        return await dpop.proof(request, arrived=arrived)
    except DpopError as refused:
        nonce = dpop.nonce()
        if refused.error == "use_dpop_nonce" and nonce is not None:
            raise UseDpopNonce(nonce, detail=refused.reason) from None
        raise InvalidDpopProof(detail=refused.reason) from None


ENDPOINT = Endpoint(
    "/token",
    {
        "post": {
            "summary": "OAuth 2.0 token endpoint (RFC 6749)",
            **form_body(
                {
                    "grant_type": {"type": "string", "enum": list(GRANT_TYPES)},
                    **token_parameters(),
                    **CLIENT_PARAMETERS,
                },
                required=["grant_type"],
                **CLIENT_AUTH,
            ),
            "responses": {200: token_response_schema(), **TOKEN_ERRORS},
        }
    },
    build=lambda services, metrics: TokenEndpoint(
        services.grants,
        services.client_auth,
        services.settings.trusted_proxy_networks,
        metrics,
        services.dpop,
    ),
)
