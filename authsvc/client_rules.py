"""What a client's registration may say, for the command line and the admin API alike.

Redirect URIs as RFC 6749 §3.1.2 and RFC 9700 §2.1 want them; web origins as
CORS compares them. A refusal is ``InvalidClientSetting``, one line naming the
option and the value's problem (never the cause's traceback).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from authsvc.errors import AuthsvcError

__all__ = ["InvalidClientSetting", "check_origin", "check_redirect_uri"]


class InvalidClientSetting(AuthsvcError):
    """A client setting is refused; ``str()`` is the one line to show."""


def check_redirect_uri(option: str, uri: str) -> str:
    """A redirect URI as RFC 6749 §3.1.2 and RFC 9700 §2.1 want it: absolute, no fragment, and
    https except on loopback (or a private-use scheme of a native app, RFC 8252 §7.1)."""
    parts = urlsplit(uri)
    bad = (
        not parts.scheme
        or "#" in uri
        or any(c.isspace() or not c.isprintable() for c in uri)
        or len(uri) > 2000
        or (parts.scheme in ("http", "https") and not parts.hostname)
        or parts.username is not None
    )
    if bad:
        raise InvalidClientSetting(f"{option} {uri!r}: an absolute URI without fragment or credentials")
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "::1", "localhost"):
        raise InvalidClientSetting(f"{option} {uri!r}: http is allowed only on loopback; use https")
    return uri


def check_origin(origin: str) -> str:
    """A web origin: scheme://host[:port] and nothing else."""
    parts = urlsplit(origin)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or origin != f"{parts.scheme}://{parts.netloc}"
    ):
        raise InvalidClientSetting(f"--web-origin {origin!r}: an origin is scheme://host[:port]")
    return origin
