"""The grants the token endpoint serves: one module per grant type, one registry.

``GRANTS`` lists the grant classes (their metadata is static: the clients CLI
and the metrics read it without building a service); ``GrantRegistry`` holds
the instances a running server dispatches to.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from authsvc.grants.authorization_code import AuthorizationCodeGrant
from authsvc.grants.base import Grant, GrantRequest
from authsvc.grants.client_credentials import ClientCredentialsGrant
from authsvc.grants.password import PasswordGrant
from authsvc.grants.refresh_token import RefreshTokenGrant

__all__ = ["GRANTS", "GRANT_TYPES", "Grant", "GrantRegistry", "GrantRequest", "token_parameters"]

#: Every grant class, in the order discovery lists them.
GRANTS: tuple[type[Grant], ...] = (
    AuthorizationCodeGrant,
    PasswordGrant,
    RefreshTokenGrant,
    ClientCredentialsGrant,
)
#: Their grant types.
GRANT_TYPES: tuple[str, ...] = tuple(grant.grant_type for grant in GRANTS)


def token_parameters() -> dict[str, dict[str, Any]]:
    """The token endpoint's form parameters: every grant's, for the OpenAPI document."""
    merged: dict[str, dict[str, Any]] = {}
    for grant in GRANTS:
        merged.update(grant.parameters)
    return merged


class GrantRegistry:
    """The grant instances of one server, by grant type."""

    def __init__(self, grants: Iterable[Grant]) -> None:
        self._grants: Mapping[str, Grant] = {grant.grant_type: grant for grant in grants}

    def get(self, grant_type: str) -> Grant | None:
        return self._grants.get(grant_type)

    @property
    def grant_types(self) -> tuple[str, ...]:
        return tuple(self._grants)
