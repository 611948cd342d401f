"""Redirect URIs: exact matching (loopback on any port, RFC 8252 §7.3) and the answers sent to them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import urlencode, urlsplit, urlunsplit

__all__ = ["matches_registered", "with_query"]


def matches_registered(uri: str, registered: Iterable[str]) -> bool:
    """Whether ``uri`` is one of the registered URIs, compared as strings.

    A registered loopback URI (``http://127.0.0.1/...`` or ``http://[::1]/...``)
    also matches the same URI on any port: native apps listen on an ephemeral
    port. Nothing else is normalised: not case, not a trailing slash.
    """
    if any(c.isspace() or not c.isprintable() for c in uri):
        return False  # urlsplit would drop tabs and newlines, and "exactly" would not be exact
    uri_loopback = _without_loopback_port(uri)
    for candidate in registered:
        if uri == candidate:
            return True
        if uri_loopback is not None and uri_loopback == _without_loopback_port(candidate):
            return True
    return False


def _without_loopback_port(uri: str) -> str | None:
    """The URI with its port removed, if it is an http loopback URI; else None."""
    if not uri.startswith("http://"):
        return None
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        return None
    host = {"127.0.0.1": "127.0.0.1", "::1": "[::1]"}.get(parts.hostname or "")
    if host is None or parts.username is not None or parts.password is not None:
        return None
    return urlunsplit(("http", host, parts.path, parts.query, parts.fragment))


def with_query(uri: str, parameters: Mapping[str, str | None]) -> str:
    """``uri`` with ``parameters`` (those not None) added to its query (RFC 6749 §4.1.2)."""
    extra = urlencode({name: value for name, value in parameters.items() if value is not None})
    parts = urlsplit(uri)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
