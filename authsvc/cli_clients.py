"""``authsvc clients add|update|rotate-secret|list|remove``.

What a client may be is checked in one place, ``authsvc.client_rules``,
for add and update alike; this module reads the options, files and stdin,
and prints.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Final

import typer

from authsvc.client_rules import (
    ClientOptions,
    InvalidClientSetting,
    check_jwks,
    client_changes,
    new_client,
)
from authsvc.client_secrets import generate_secret, hash_generated
from authsvc.clients import built_in_client_ids
from authsvc.clock import SystemClock
from authsvc.events import ClientAdded, ClientRemoved, ClientSecretRotated, ClientUpdated, Events
from authsvc.passwords import PasswordHasher
from authsvc.settings import AuthSettings, get_settings
from authsvc.store.records import Client

__all__ = ["clients_app"]

clients_app = typer.Typer(no_args_is_help=True, help="Manage OAuth clients.")

_SHOWN_ONCE: Final = "client secret (shown once, store it now): "
_MAX_OVERLAP: Final = 30 * 86400  # a month: an overlap is for a deployment, not a second secret


class ClientCommandError(InvalidClientSetting):
    """A clients command failed; printed as one line."""


async def _run(settings: AuthSettings, action):  # type: ignore[no-untyped-def]
    from authsvc.store.sql.clients import SqlClientStore
    from authsvc.store.sql.database import open_database
    from authsvc.store.sql.users import SqlUserStore

    engine = await open_database(settings)
    try:
        return await action(SqlClientStore(engine), SqlUserStore(engine))
    finally:
        await engine.dispose()


def _read_jwks(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:
        raise ClientCommandError(f"--jwks {path}: not a readable JWKS ({type(exc).__name__})") from None
    return check_jwks(text, str(path))


# The options that describe a client, shared by add and update (None: not given).
_Grants = Annotated[list[str] | None, typer.Option("--grant", help="Allowed grant type (repeat).")]
_Scope = Annotated[str | None, typer.Option(help="Space-separated scopes the client may get.")]
_Audience = Annotated[list[str] | None, typer.Option("--audience", help="Audience of its tokens.")]
_Jwks = Annotated[Path | None, typer.Option("--jwks", help="Public JWKS file (private_key_jwt).")]
_JwksUri = Annotated[
    str | None,
    typer.Option("--jwks-uri", help="URL of its public JWKS (private_key_jwt), fetched and cached."),
]
_Ttl = Annotated[
    int | None, typer.Option("--access-token-ttl", min=1, help="Access-token lifetime, seconds.")
]
_RedirectUri = Annotated[
    list[str] | None, typer.Option("--redirect-uri", help="Where codes may be sent (repeat).")
]
_LogoutUri = Annotated[
    list[str] | None,
    typer.Option("--post-logout-redirect-uri", help="Where /logout may send the browser (repeat)."),
]
_WebOrigin = Annotated[
    list[str] | None, typer.Option("--web-origin", help="A browser origin allowed by CORS (repeat).")
]
_FirstParty = Annotated[
    bool | None,
    typer.Option("--first-party/--no-first-party", help="Trusted: its users are not asked for consent."),
]
_RequirePar = Annotated[
    bool | None,
    typer.Option("--require-par/--no-require-par", help="Authorization requests must be pushed (RFC 9126)."),
]
_RequireDpop = Annotated[
    bool | None,
    typer.Option(
        "--require-dpop/--no-require-dpop", help="Token requests must carry a DPoP proof (RFC 9449)."
    ),
]


def _options(
    grant: list[str] | None,
    scope: str | None,
    audience: list[str] | None,
    jwks: Path | None,
    jwks_uri: str | None,
    access_token_ttl: int | None,
    redirect_uri: list[str] | None,
    post_logout_redirect_uri: list[str] | None,
    web_origin: list[str] | None,
    first_party: bool | None,
    require_par: bool | None,
    require_dpop: bool | None,
) -> ClientOptions:
    return ClientOptions(
        grants=grant,
        scope=scope,
        audiences=audience,
        access_token_ttl=access_token_ttl,
        jwks=_read_jwks(jwks) if jwks is not None else None,
        jwks_uri=jwks_uri,
        redirect_uris=redirect_uri,
        post_logout_redirect_uris=post_logout_redirect_uri,
        web_origins=web_origin,
        first_party=first_party,
        require_par=require_par,
        require_dpop=require_dpop,
    )


def _kind(client: Client) -> str:
    if client.public:
        return "public"
    return "confidential" if client.secret_hash else "private_key_jwt"


@clients_app.command("add")
def clients_add(
    client_id: str,
    secret_stdin: Annotated[bool, typer.Option("--secret-stdin", help="Read the secret from stdin.")] = False,
    public: Annotated[bool, typer.Option("--public", help="A public client (no secret).")] = False,
    grant: _Grants = None,
    scope: _Scope = None,
    audience: _Audience = None,
    jwks: _Jwks = None,
    jwks_uri: _JwksUri = None,
    access_token_ttl: _Ttl = None,
    redirect_uri: _RedirectUri = None,
    post_logout_redirect_uri: _LogoutUri = None,
    web_origin: _WebOrigin = None,
    first_party: _FirstParty = None,
    require_par: _RequirePar = None,
    require_dpop: _RequireDpop = None,
) -> None:
    """Register a client. A generated secret is printed once."""
    from authsvc.store.sql.clients import DuplicateClient

    settings = get_settings()
    if not client_id or len(client_id) > 200 or any(c.isspace() or not c.isprintable() for c in client_id):
        raise ClientCommandError("a client id is 1 to 200 printable characters without spaces")
    if client_id == settings.default_client_id:
        raise ClientCommandError("that id is the built-in default client (AUTHSVC_DEFAULT_CLIENT_ID)")
    if client_id in built_in_client_ids(settings):
        raise ClientCommandError("that id is a built-in client (the console's)")
    if public and secret_stdin:
        raise ClientCommandError("a public client has no secret and no keys")
    if secret_stdin and (jwks or jwks_uri):
        raise ClientCommandError("choose --secret-stdin or --jwks/--jwks-uri, not both")
    options = _options(
        grant,
        scope,
        audience,
        jwks,
        jwks_uri,
        access_token_ttl,
        redirect_uri,
        post_logout_redirect_uri,
        web_origin,
        first_party,
        require_par,
        require_dpop,
    )
    changes = client_changes(options, public=public)
    secret_hash = secret = None
    if not public and not (changes.jwks or changes.jwks_uri):
        if secret_stdin:
            chosen = sys.stdin.readline().rstrip("\r\n")
            if len(chosen) < 16:
                raise ClientCommandError("a client secret needs at least 16 characters")
            secret_hash = PasswordHasher(
                settings.argon2_memory_kib, settings.argon2_time_cost, settings.argon2_parallelism
            ).hash_sync(chosen)
        else:
            secret = generate_secret()
            secret_hash = hash_generated(secret)
    client = new_client(client_id, changes, public=public, secret_hash=secret_hash)

    async def add(clients, users):  # type: ignore[no-untyped-def]
        # A client token's sub is its id: it must not name an existing user.
        from authsvc.usernames import login_name

        as_username = login_name(client_id)
        if (
            as_username is not None and await users.by_username(as_username) is not None
        ) or await users.by_id(client_id) is not None:
            raise ClientCommandError("a client id may not equal an existing user name or user id")
        try:
            await clients.add(client, SystemClock().now())
        except DuplicateClient as taken:
            if taken.removed:
                raise ClientCommandError(
                    f"client {client_id!r} was removed; a client id is never reused"
                ) from None
            raise ClientCommandError(f"client {client_id!r} exists") from None

    asyncio.run(_run(settings, add))
    Events().publish(ClientAdded(client_id=client_id))
    typer.echo(f"added {_kind(client)} client {client_id} (grants: {' '.join(sorted(client.grant_types))})")
    if client.redirect_uris:
        typer.echo(
            f"redirect URIs: {' '.join(client.redirect_uris)}"
            + (" (first-party)" if client.first_party else "")
        )
    if secret is not None:
        typer.echo(f"{_SHOWN_ONCE}{secret}")


@clients_app.command("update")
def clients_update(
    client_id: str,
    grant: _Grants = None,
    scope: _Scope = None,
    audience: _Audience = None,
    jwks: _Jwks = None,
    jwks_uri: _JwksUri = None,
    access_token_ttl: _Ttl = None,
    redirect_uri: _RedirectUri = None,
    post_logout_redirect_uri: _LogoutUri = None,
    web_origin: _WebOrigin = None,
    first_party: _FirstParty = None,
    require_par: _RequirePar = None,
    require_dpop: _RequireDpop = None,
) -> None:
    """Change what is given of a client (a list option replaces the list; '' empties it).

    Its kind (public or confidential) and its secret stay; every process sees the
    change within half a second.
    """
    options = _options(
        grant,
        scope,
        audience,
        jwks,
        jwks_uri,
        access_token_ttl,
        redirect_uri,
        post_logout_redirect_uri,
        web_origin,
        first_party,
        require_par,
        require_dpop,
    )
    if options == ClientOptions():
        raise typer.BadParameter("give at least one option to change", param_hint="options")
    settings = get_settings()

    async def update(clients, _users):  # type: ignore[no-untyped-def]
        current = await clients.get(client_id)
        if current is None:
            raise ClientCommandError(f"no client {client_id!r}" + _built_in(settings, client_id))
        changes = client_changes(options, public=current.public, current=current)
        if await clients.update(client_id, changes, SystemClock().now()) is None:
            raise ClientCommandError(f"no client {client_id!r}")  # removed meanwhile
        return changes

    changes = asyncio.run(_run(settings, update))
    changed = " ".join(f.name for f in dataclasses.fields(changes) if getattr(changes, f.name) is not None)
    Events().publish(ClientUpdated(client_id=client_id, changed=changed))
    typer.echo(f"updated client {client_id}: {changed.replace(' ', ', ')}")


@clients_app.command("rotate-secret")
def clients_rotate_secret(
    client_id: str,
    overlap: Annotated[
        int,
        typer.Option(
            "--overlap", min=0, max=_MAX_OVERLAP, help="Seconds the current secret keeps working (0: none)."
        ),
    ] = 0,
) -> None:
    """Replace a confidential client's secret; the new one is printed once."""
    settings = get_settings()
    secret = generate_secret()

    async def rotate(clients, _users):  # type: ignore[no-untyped-def]
        current = await clients.get(client_id)
        if current is None:
            raise ClientCommandError(f"no client {client_id!r}" + _built_in(settings, client_id))
        if current.public:
            raise ClientCommandError(f"client {client_id!r} is public: it has no secret")
        if current.secret_hash is None:
            raise ClientCommandError(
                f"client {client_id!r} authenticates with private_key_jwt: it has no secret"
            )
        now = SystemClock().now()
        if not await clients.rotate_secret(client_id, hash_generated(secret), now + overlap, now):
            raise ClientCommandError(f"no client {client_id!r}")  # removed meanwhile
        return now + overlap

    until = asyncio.run(_run(settings, rotate))
    Events().publish(ClientSecretRotated(client_id=client_id, overlap=overlap))
    if overlap:
        typer.echo(f"rotated the secret of client {client_id}; the previous one works until {_when(until)}")
    else:
        typer.echo(f"rotated the secret of client {client_id}; the previous one no longer works")
    typer.echo(f"{_SHOWN_ONCE}{secret}")


def _built_in(settings: AuthSettings, client_id: str) -> str:
    return (
        " (the built-in default client is not registered)" if client_id == settings.default_client_id else ""
    )


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _flags(client: Client, now: float) -> str:
    """What else a client has, compactly: options set, logout URIs, origins, a secret in overlap."""
    flags = [name for name in ("first_party", "require_par", "require_dpop") if getattr(client, name)]
    flags = [name.replace("_", "-") for name in flags]
    if client.access_token_ttl is not None:
        flags.append(f"ttl={client.access_token_ttl}")
    if client.jwks:
        flags.append("jwks")
    if client.jwks_uri:
        flags.append(f"jwks-uri={client.jwks_uri}")
    flags += [f"logout={uri}" for uri in client.post_logout_redirect_uris]
    flags += [f"origin={origin}" for origin in client.web_origins]
    if client.previous_secret_until is not None and client.previous_secret_until > now:
        flags.append(f"previous-secret-until={_when(client.previous_secret_until)}")
    return " ".join(flags) or "-"


@clients_app.command("list")
def clients_list() -> None:
    """List clients: id, kind, grants, scopes, audiences, redirect URIs, flags (tab-separated)."""
    settings = get_settings()
    typer.echo(
        f"{settings.default_client_id}\tpublic\tpassword refresh_token\t(any)\t(built-in default)\t-\t-"
    )
    now = SystemClock().now()
    for client in asyncio.run(_run(settings, lambda clients, _users: clients.list())):
        typer.echo(
            f"{client.id}\t{_kind(client)}\t{' '.join(sorted(client.grant_types))}\t"
            f"{' '.join(sorted(client.scopes or ()))}\t{' '.join(client.audiences) or '(default audience)'}\t"
            f"{' '.join(client.redirect_uris) or '-'}\t{_flags(client, now)}"
        )


@clients_app.command("remove")
def clients_remove(client_id: str) -> None:
    """Remove a client and end its sessions; its id is never reused."""
    revoked = asyncio.run(
        _run(get_settings(), lambda clients, _users: clients.remove(client_id, SystemClock().now()))
    )
    if revoked is None:
        raise ClientCommandError(f"no client {client_id!r}")
    Events().publish(ClientRemoved(client_id=client_id, count=revoked))
    typer.echo(f"removed client {client_id}; revoked {revoked} sessions")
