"""The scope grammar (RFC 6749 §3.3), once for the server, the CLI and the verifier,
and the one rule every grant applies to a ``scope`` request.

    scope       = scope-token *( SP scope-token )
    scope-token = 1*( %x21 / %x23-5B / %x5D-7E )

Part of the base install: ``authsvc.verifier`` checks scopes with it too.
"""

from __future__ import annotations

import re
from typing import Final

from authsvc.errors import InvalidScope

__all__ = ["SCOPE_TOKEN", "granted_scopes", "is_scope_token", "scope_str", "split_scope"]

#: One scope token: printable ASCII without space, ``"`` or ``\\``.
SCOPE_TOKEN: Final = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


def is_scope_token(value: str) -> bool:
    return SCOPE_TOKEN.fullmatch(value) is not None


def split_scope(value: str) -> frozenset[str] | None:
    """The tokens of a ``scope`` value, or None if it breaks the grammar (one space between tokens)."""
    tokens = value.split(" ")
    if not all(is_scope_token(token) for token in tokens):
        return None
    return frozenset(tokens)


def scope_str(scopes: frozenset[str]) -> str:
    """The canonical ``scope`` value: sorted, one space apart."""
    return " ".join(sorted(scopes))


def granted_scopes(allowed: frozenset[str], requested: frozenset[str] | None) -> frozenset[str]:
    """The scopes a grant issues: all of ``allowed`` when none was asked, else the request,
    which must lie within ``allowed`` (InvalidScope otherwise)."""
    scopes = allowed if requested is None else requested
    if not scopes <= allowed:
        raise InvalidScope()
    return scopes
