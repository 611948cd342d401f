"""POST /par: pushed authorization requests (RFC 9126).

The client authenticates as at /token and pushes the parameters it would put
in the authorization URL; they are checked as /authorize checks them and kept
60 s under a single-use ``request_uri``. The browser then carries only
``client_id`` and ``request_uri``: nothing in the URL to tamper with or leak.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import Response

from authsvc.addresses import Network
from authsvc.api.form import read_form
from authsvc.api.peer import request_address
from authsvc.api.responses import NO_STORE, json_response
from authsvc.api.routes import Endpoint
from authsvc.api.schemas import CLIENT_AUTH, CLIENT_ERRORS, CLIENT_PARAMETERS, error_schema, form_body
from authsvc.api.token import token_endpoint_proof
from authsvc.browser.flow import BrowserFlow
from authsvc.browser.requests import PARAMETERS, AuthorizationError
from authsvc.client_auth import ClientAuthenticator
from authsvc.dpop_gate import DpopGate
from authsvc.errors import InvalidDpopProof, UnauthorizedClient

__all__ = ["ENDPOINT", "ParEndpoint"]


class ParEndpoint:
    def __init__(
        self,
        flow: BrowserFlow,
        client_auth: ClientAuthenticator,
        trusted_proxies: Sequence[Network],
        dpop: DpopGate,
    ) -> None:
        self.flow = flow
        self.client_auth = client_auth
        self.trusted_proxies = trusted_proxies
        self.dpop = dpop

    async def __call__(self, request: Request) -> Response:
        arrived = self.dpop.now()  # client authentication may wait on the database
        form = await read_form(request)
        identity = await self.client_auth.authenticate(
            request.headers.get("authorization"),
            form,
            allow_default=False,
            address=request_address(request, self.trusted_proxies),
        )
        if "authorization_code" not in identity.client.grant_types:
            raise UnauthorizedClient()
        proof = await token_endpoint_proof(self.dpop, request, arrived)
        if proof is None and identity.client.require_dpop:
            raise InvalidDpopProof("This client must send a DPoP proof.")
        values = {name: value for name, value in form.items() if name in PARAMETERS}
        try:
            request_uri, expires_in = await self.flow.push(
                values, frozenset(), identity.client, proof.jkt if proof is not None else None
            )
        except AuthorizationError as error:
            return json_response(
                {"error": error.error, "error_description": error.description}, 400, headers=NO_STORE
            )
        return json_response({"request_uri": request_uri, "expires_in": expires_in}, 201, headers=NO_STORE)


ENDPOINT = Endpoint(
    "/par",
    {
        "post": {
            "summary": "Pushed authorization request (RFC 9126)",
            **form_body(
                {
                    **{name: {"type": "string"} for name in PARAMETERS if name != "request_uri"},
                    **CLIENT_PARAMETERS,
                },
                required=["response_type"],
                **CLIENT_AUTH,
            ),
            "responses": {
                201: {
                    "description": "The request_uri to send the browser with",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["request_uri", "expires_in"],
                                "properties": {
                                    "request_uri": {"type": "string"},
                                    "expires_in": {"type": "integer"},
                                },
                            }
                        }
                    },
                },
                **CLIENT_ERRORS,
                400: error_schema(
                    "The request is not valid",
                    [
                        "invalid_request",
                        "invalid_scope",
                        "unauthorized_client",
                        "unsupported_response_type",
                        "request_not_supported",
                    ],
                ),
            },
        }
    },
    build=lambda services, _metrics: ParEndpoint(
        services.browser_flow, services.client_auth, services.settings.trusted_proxy_networks, services.dpop
    ),
)
