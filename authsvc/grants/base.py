"""What a grant is: the shape every grant module fills in (fosite's handlers, node-oidc-provider's
``lib/actions/grants/``).

A grant declares its ``grant_type``, the form parameters it reads (their OpenAPI
schemas), whether a request without client authentication may act as the
default client, and ``handle``. The token endpoint, discovery, the clients CLI,
metrics and the OpenAPI document all read the registry in ``authsvc.grants``;
a new grant is one new module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from authsvc.errors import InvalidScope
from authsvc.scopes import split_scope
from authsvc.store.records import Client
from authsvc.tokens.families import TokenResponse

__all__ = ["Grant", "GrantRequest", "requested_scope"]


@dataclass(frozen=True, slots=True)
class GrantRequest:
    """A token request after client authentication."""

    form: Mapping[str, str]
    client: Client
    address: str  # the caller's, for the login limits
    dpop_jkt: str | None = None  # the key a valid DPoP proof was made with (RFC 9449)


class Grant(Protocol):
    grant_type: ClassVar[str]
    #: Form parameters beyond grant_type and client authentication, as OpenAPI schemas.
    parameters: ClassVar[dict[str, dict[str, Any]]]
    #: Whether a request with neither client authentication nor client_id acts as the default client.
    default_client: ClassVar[bool]

    async def handle(self, request: GrantRequest) -> TokenResponse: ...


def requested_scope(form: Mapping[str, str]) -> frozenset[str] | None:
    """The ``scope`` parameter's tokens; None when not asked (RFC 6749 §3.3)."""
    value = form.get("scope")
    if value is None:
        return None
    scopes = split_scope(value)
    if scopes is None:
        raise InvalidScope("The scope parameter is malformed.")
    return scopes
