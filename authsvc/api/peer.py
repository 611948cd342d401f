"""The calling client's address for a request (see ``authsvc.addresses`` for the rules)."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import Request

from authsvc.addresses import Network, client_address

__all__ = ["request_address"]


def request_address(request: Request, trusted: Sequence[Network]) -> str:
    """The TCP peer, or behind ``AUTHSVC_TRUSTED_PROXIES`` the client their X-Forwarded-For names."""
    return client_address(
        request.client.host if request.client else None,
        request.headers.getlist("x-forwarded-for"),
        trusted,
    )
