"""What a client's registration may say, for the command line and the admin API alike.

An operator's :class:`ClientOptions` (None: not given) become a
:class:`~authsvc.store.records.ClientChanges` through :func:`client_changes`
(``clients add`` and ``clients update`` alike), which checks every value given
and then the client as it would be after the change (a new client: with the
defaults filled in):

- grant types are ours; a public client never uses ``client_credentials`` and
  has no keys (nor a secret: its kind is chosen at registration, never changed);
- the password grant is never a default (RFC 9700 §2.4): only an explicit grant;
- redirect URIs as RFC 6749 §3.1.2 and RFC 9700 §2.1 want them (https except on
  loopback or a native app's private-use scheme, RFC 8252 §7); web origins as
  CORS compares them;
- ``authorization_code`` needs a redirect URI, and the browser sign-in options
  need ``authorization_code``;
- keys are registered (``--jwks``: every key usable, see ``authsvc.client_keys``)
  or fetched (``--jwks-uri``: https, or http on loopback), never both.

A list option given as one empty value clears the list (``--redirect-uri ''``).
A refusal is ``InvalidClientSetting``, one line naming the option and the
value's problem (never a key, never the cause's traceback).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from authsvc.client_keys import key_problem, registered_keys
from authsvc.errors import AuthsvcError
from authsvc.grants import GRANT_TYPES
from authsvc.jose import ASYMMETRIC_ALGS
from authsvc.scopes import is_scope_token
from authsvc.store.records import Client, ClientChanges

__all__ = [
    "ClientOptions",
    "InvalidClientSetting",
    "check_jwks",
    "check_jwks_uri",
    "check_origin",
    "check_redirect_uri",
    "client_changes",
    "new_client",
]

_GRANTS = frozenset(GRANT_TYPES)
_MAX_URI = 2000
_BROWSER_ONLY = ("redirect_uris", "post_logout_redirect_uris", "first_party", "require_par")


class InvalidClientSetting(AuthsvcError):
    """A client setting is refused; ``str()`` is the one line to show."""


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """What the operator asked for; None is "not given" (a new client: the default; an update: kept)."""

    grants: Sequence[str] | None = None
    scope: str | None = None  # one space-separated list
    audiences: Sequence[str] | None = None  # each may be a space-separated list too
    access_token_ttl: int | None = None
    jwks: str | None = None  # the JWKS document's text
    jwks_uri: str | None = None
    redirect_uris: Sequence[str] | None = None
    post_logout_redirect_uris: Sequence[str] | None = None
    web_origins: Sequence[str] | None = None
    first_party: bool | None = None
    require_par: bool | None = None
    require_dpop: bool | None = None


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


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_jwks_uri(uri: str) -> str:
    """Where a private_key_jwt client publishes its keys: https, or http on loopback only."""
    try:
        parts = urlsplit(uri)
        host, _port = parts.hostname, parts.port  # a bad port raises ValueError
    except ValueError:
        raise InvalidClientSetting("--jwks-uri: not a URL") from None
    if (
        parts.scheme not in ("http", "https")
        or not host
        or "#" in uri
        or parts.username is not None
        or len(uri) > _MAX_URI
        or any(c.isspace() or not c.isprintable() for c in uri)
    ):
        raise InvalidClientSetting("--jwks-uri: an absolute http(s) URL without fragment or credentials")
    if parts.scheme == "http" and not _is_loopback(host):
        raise InvalidClientSetting("--jwks-uri: http is allowed only on loopback; use https")
    return uri


def check_jwks(text: str, source: str) -> str:
    """A JWKS to register, compact: every key usable (a weak one is refused, not skipped)."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise InvalidClientSetting(f"--jwks {source}: not a valid JWKS") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list) or not data["keys"]:
        raise InvalidClientSetting(f"--jwks {source}: not a valid JWKS")
    for raw in data["keys"]:
        problem = key_problem(raw)
        if problem is not None:
            raise InvalidClientSetting(f"--jwks {source}: {problem}")
    compact = json.dumps(data, separators=(",", ":"))
    if not registered_keys(compact):
        raise InvalidClientSetting(
            f"--jwks {source}: no signature key with an allowed alg ({', '.join(sorted(ASYMMETRIC_ALGS))})"
        )
    return compact


def _words(option: str, values: Sequence[str]) -> list[str]:
    """Values of a repeatable option; each may also be a space-separated list."""
    words = [word for value in values for word in value.split()]
    for word in words:
        if not is_scope_token(word):
            raise InvalidClientSetting(f"{option}: printable ASCII without spaces, quotes or backslashes")
    return words


def _uris(option: str, values: Sequence[str]) -> tuple[str, ...]:
    if list(values) == [""]:  # one empty value: none
        return ()
    return tuple(dict.fromkeys(check_redirect_uri(option, uri) for uri in values))


def _given(options: ClientOptions, public: bool, new: bool) -> dict[str, Any]:
    """Each option given, checked on its own, as ClientChanges fields."""
    given: dict[str, Any] = {}
    grants = options.grants
    if grants is None and new:
        grants = ["refresh_token"] if public else ["client_credentials"]
    if grants is not None:
        if not grants:
            raise InvalidClientSetting("--grant: at least one grant type")
        unknown = set(grants) - _GRANTS
        if unknown:
            raise InvalidClientSetting(f"unknown grant type {sorted(unknown)[0]!r}")
        given["grant_types"] = frozenset(grants)
    if options.scope is not None or new:
        given["scopes"] = frozenset(_words("--scope", [options.scope or ""]))
    if options.audiences is not None or new:
        # None of them: the tokens get AUTHSVC_DEFAULT_AUDIENCE as it is when they are issued.
        given["audiences"] = tuple(dict.fromkeys(_words("--audience", options.audiences or ())))
    if options.access_token_ttl is not None:
        if options.access_token_ttl < 1:
            raise InvalidClientSetting("--access-token-ttl: at least 1 second")
        given["access_token_ttl"] = options.access_token_ttl
    if options.jwks is not None and options.jwks_uri is not None:
        raise InvalidClientSetting("choose --jwks or --jwks-uri, not both")
    if public and (options.jwks is not None or options.jwks_uri is not None):
        raise InvalidClientSetting("a public client has no secret and no keys")
    if options.jwks is not None:  # already checked by check_jwks; the URI is dropped with it
        given["jwks"], given["jwks_uri"] = options.jwks, ""
    if options.jwks_uri is not None:
        given["jwks_uri"], given["jwks"] = check_jwks_uri(options.jwks_uri), ""
    for name, option in (
        ("redirect_uris", "--redirect-uri"),
        ("post_logout_redirect_uris", "--post-logout-redirect-uri"),
    ):
        values = getattr(options, name)
        if values is not None or new:
            given[name] = _uris(option, values or ())
    if options.web_origins is not None or new:
        origins = options.web_origins or ()
        given["web_origins"] = (
            () if list(origins) == [""] else tuple(dict.fromkeys(check_origin(o) for o in origins))
        )
    for name in ("first_party", "require_par", "require_dpop"):
        value = getattr(options, name)
        if value is not None or new:
            given[name] = bool(value)
    return given


def client_changes(options: ClientOptions, *, public: bool, current: Client | None = None) -> ClientChanges:
    """The checked change ``options`` make: to ``current``, or (None) a new client's every field.

    A new client gets the defaults for what is not given: no scopes, the default
    audience, ``refresh_token`` (public) or ``client_credentials``, no browser
    sign-in. An update holds only what is given.
    """
    given = _given(options, public, new=current is None)
    after = dataclasses.replace(
        current or Client(id="", public=public, grant_types=frozenset(), scopes=frozenset(), audiences=()),
        **{name: value for name, value in given.items() if name not in ("jwks", "jwks_uri")},
    )
    if after.public and "client_credentials" in after.grant_types:
        raise InvalidClientSetting("a public client cannot use client_credentials")
    if "authorization_code" in after.grant_types and not after.redirect_uris:
        raise InvalidClientSetting("--grant authorization_code needs at least one --redirect-uri")
    if any(getattr(after, name) for name in _BROWSER_ONLY) and "authorization_code" not in after.grant_types:
        raise InvalidClientSetting("browser sign-in options need --grant authorization_code")
    return ClientChanges(**given)


def new_client(client_id: str, changes: ClientChanges, *, public: bool, secret_hash: str | None) -> Client:
    """The client ``clients add`` registers, from the changes of :func:`client_changes`."""
    return Client(
        id=client_id,
        public=public,
        grant_types=changes.grant_types or frozenset(),
        scopes=changes.scopes or frozenset(),
        audiences=changes.audiences or (),
        access_token_ttl=changes.access_token_ttl,
        secret_hash=secret_hash,
        jwks=changes.jwks or None,
        jwks_uri=changes.jwks_uri or None,
        redirect_uris=changes.redirect_uris or (),
        post_logout_redirect_uris=changes.post_logout_redirect_uris or (),
        web_origins=changes.web_origins or (),
        first_party=bool(changes.first_party),
        require_par=bool(changes.require_par),
        require_dpop=bool(changes.require_dpop),
    )
