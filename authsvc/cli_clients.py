"""``authsvc clients add|list|remove``."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from authsvc.client_rules import check_origin, check_redirect_uri
from authsvc.client_secrets import generate_secret, hash_generated
from authsvc.clock import SystemClock
from authsvc.errors import AuthsvcError
from authsvc.events import ClientAdded, ClientRemoved, Events
from authsvc.grants import GRANT_TYPES
from authsvc.jose import ASYMMETRIC_ALGS
from authsvc.passwords import PasswordHasher
from authsvc.scopes import is_scope_token
from authsvc.settings import AuthSettings, get_settings
from authsvc.store.records import Client

__all__ = ["clients_app"]

clients_app = typer.Typer(no_args_is_help=True, help="Manage OAuth clients.")

_GRANTS = frozenset(GRANT_TYPES)


class ClientCommandError(AuthsvcError):
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
    from authsvc.client_keys import key_problem, registered_keys

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ClientCommandError(f"--jwks {path}: not a readable JWKS ({type(exc).__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list) or not data["keys"]:
        raise ClientCommandError(f"--jwks {path}: not a valid JWKS")
    for raw in data["keys"]:  # every key must be usable: a weak one is refused, not skipped
        problem = key_problem(raw)
        if problem is not None:
            raise ClientCommandError(f"--jwks {path}: {problem}")
    text = json.dumps(data, separators=(",", ":"))
    if not registered_keys(text):
        raise ClientCommandError(
            f"--jwks {path}: no signature key with an allowed alg ({', '.join(sorted(ASYMMETRIC_ALGS))})"
        )
    return text


def _words(option: str, values: list[str] | None) -> list[str]:
    """Values of a repeatable option; each may also be a space-separated list."""
    words = [word for value in values or () for word in value.split()]
    for word in words:
        if not is_scope_token(word):
            raise ClientCommandError(f"{option}: printable ASCII without spaces, quotes or backslashes")
    return words


@clients_app.command("add")
def clients_add(
    client_id: str,
    secret_stdin: Annotated[bool, typer.Option("--secret-stdin", help="Read the secret from stdin.")] = False,
    public: Annotated[bool, typer.Option("--public", help="A public client (no secret).")] = False,
    grant: Annotated[list[str] | None, typer.Option("--grant", help="Allowed grant type (repeat).")] = None,
    scope: Annotated[str, typer.Option(help="Space-separated scopes the client may get.")] = "",
    audience: Annotated[list[str] | None, typer.Option("--audience", help="Audience of its tokens.")] = None,
    jwks: Annotated[Path | None, typer.Option("--jwks", help="Public JWKS file (private_key_jwt).")] = None,
    access_token_ttl: Annotated[
        int | None, typer.Option("--access-token-ttl", min=1, help="Access-token lifetime, seconds.")
    ] = None,
    redirect_uri: Annotated[
        list[str] | None, typer.Option("--redirect-uri", help="Where codes may be sent (repeat).")
    ] = None,
    post_logout_redirect_uri: Annotated[
        list[str] | None,
        typer.Option("--post-logout-redirect-uri", help="Where /logout may send the browser (repeat)."),
    ] = None,
    web_origin: Annotated[
        list[str] | None, typer.Option("--web-origin", help="A browser origin allowed by CORS (repeat).")
    ] = None,
    first_party: Annotated[
        bool, typer.Option("--first-party", help="Trusted: its users are not asked for consent.")
    ] = False,
    require_par: Annotated[
        bool, typer.Option("--require-par", help="Authorization requests must be pushed (RFC 9126).")
    ] = False,
    require_dpop: Annotated[
        bool, typer.Option("--require-dpop", help="Token requests must carry a DPoP proof (RFC 9449).")
    ] = False,
) -> None:
    """Register a client. A generated secret is printed once."""
    from authsvc.store.sql.clients import DuplicateClient

    settings = get_settings()
    if not client_id or len(client_id) > 200 or any(c.isspace() or not c.isprintable() for c in client_id):
        raise ClientCommandError("a client id is 1 to 200 printable characters without spaces")
    if client_id == settings.default_client_id:
        raise ClientCommandError("that id is the built-in default client (AUTHSVC_DEFAULT_CLIENT_ID)")
    if public and (secret_stdin or jwks):
        raise ClientCommandError("a public client has no secret and no keys")
    if secret_stdin and jwks:
        raise ClientCommandError("choose --secret-stdin or --jwks, not both")
    # The password grant is never a default (RFC 9700 §2.4): only an explicit --grant password.
    grants = set(grant or (["refresh_token"] if public else ["client_credentials"]))
    unknown = grants - _GRANTS
    if unknown:
        raise ClientCommandError(f"unknown grant type {sorted(unknown)[0]!r}")
    if public and "client_credentials" in grants:
        raise ClientCommandError("a public client cannot use client_credentials")
    redirect_uris = tuple(dict.fromkeys(check_redirect_uri("--redirect-uri", u) for u in redirect_uri or ()))
    logout_uris = tuple(
        dict.fromkeys(
            check_redirect_uri("--post-logout-redirect-uri", u) for u in post_logout_redirect_uri or ()
        )
    )
    origins = tuple(dict.fromkeys(check_origin(o) for o in web_origin or ()))
    if "authorization_code" in grants and not redirect_uris:
        raise ClientCommandError("--grant authorization_code needs at least one --redirect-uri")
    if (redirect_uris or logout_uris or first_party or require_par) and "authorization_code" not in grants:
        raise ClientCommandError("browser sign-in options need --grant authorization_code")
    scopes = frozenset(_words("--scope", [scope]))
    # No --audience: the tokens get AUTHSVC_DEFAULT_AUDIENCE as it is when they are issued.
    audiences = tuple(dict.fromkeys(_words("--audience", audience)))
    secret_hash = secret = jwks_text = None
    if jwks is not None:
        jwks_text = _read_jwks(jwks)
    elif not public:
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
    client = Client(
        id=client_id,
        public=public,
        grant_types=frozenset(grants),
        scopes=scopes,
        audiences=audiences,
        access_token_ttl=access_token_ttl,
        secret_hash=secret_hash,
        jwks=jwks_text,
        redirect_uris=redirect_uris,
        post_logout_redirect_uris=logout_uris,
        web_origins=origins,
        first_party=first_party,
        require_par=require_par,
        require_dpop=require_dpop,
    )

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
    kind = "public" if public else ("private_key_jwt" if jwks_text else "confidential")
    typer.echo(f"added {kind} client {client_id} (grants: {' '.join(sorted(grants))})")
    if redirect_uris:
        typer.echo(f"redirect URIs: {' '.join(redirect_uris)}" + (" (first-party)" if first_party else ""))
    if secret is not None:
        typer.echo(f"client secret (shown once, store it now): {secret}")


@clients_app.command("list")
def clients_list() -> None:
    """List registered clients."""
    settings = get_settings()
    typer.echo(f"{settings.default_client_id}\tpublic\tpassword refresh_token\t(any)\t(built-in default)")
    for client in asyncio.run(_run(settings, lambda clients, _users: clients.list())):
        kind = "public" if client.public else ("private_key_jwt" if client.jwks else "confidential")
        typer.echo(
            f"{client.id}\t{kind}\t{' '.join(sorted(client.grant_types))}\t"
            f"{' '.join(sorted(client.scopes or ()))}\t{' '.join(client.audiences) or '(default audience)'}"
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
