"""RFC 6750 for the server's own routes and the verifier alike: reading a Bearer
credential from ``Authorization`` and writing the ``WWW-Authenticate`` challenge.

A request with no credentials, or only credentials of another scheme, gets a
bare challenge (§3.1: no error code, the client may not know authentication
is needed); a malformed Bearer request (two ``Authorization`` headers, an empty
credential) is ``400 invalid_request``. The token is read from the header only
(never the query string or a form: §2.1, RFC 9700 §4.3.2). Base install.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

__all__ = ["QUOTABLE", "BearerProblem", "bearer_token", "challenge"]

#: The characters RFC 6750 §3 allows in a quoted challenge value.
QUOTABLE: Final = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")


class BearerProblem(Exception):
    """No usable Bearer credential: ``status`` 401 (``error`` None: a bare challenge) or 400."""

    def __init__(self, status: int, error: str | None, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


def bearer_token(authorization: Sequence[str]) -> str:
    """The access token of a request's ``Authorization`` header lines, or BearerProblem."""
    if not authorization:
        raise BearerProblem(401, None, "A Bearer access token is required.")
    if len(authorization) > 1:
        raise BearerProblem(400, "invalid_request", "Send one Authorization header.")
    scheme, _, token = authorization[0].strip().partition(" ")
    if scheme.lower() != "bearer":
        raise BearerProblem(401, None, "A Bearer access token is required.")
    token = token.strip()
    if not token:
        raise BearerProblem(400, "invalid_request", "The Bearer credential is empty.")
    return token


def challenge(
    realm: str, *, error: str | None = None, description: str | None = None, scope: str | None = None
) -> str:
    """``Bearer realm="…"[, error="…", error_description="…"][, scope="…"]`` (values are ours, quotable)."""
    value = f'Bearer realm="{realm}"'
    if error is not None:
        value += f', error="{error}"'
        if description is not None:
            value += f', error_description="{description}"'
    if scope:
        value += f', scope="{scope}"'
    return value
