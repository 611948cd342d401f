"""One request header read straight from an ASGI scope.

For the middlewares and bare ASGI endpoints, which run before (or without) a
Starlette ``Request``: no copy of the header list and no lower-casing (ASGI
header names are lower-case bytes). The first value wins, as
``Headers.get`` does.
"""

from __future__ import annotations

from starlette.types import Scope

__all__ = ["raw_header"]


def raw_header(scope: Scope, name: bytes) -> bytes | None:
    """The value of header ``name`` (lower-case), or None when the request has none."""
    key: bytes
    value: bytes
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None
