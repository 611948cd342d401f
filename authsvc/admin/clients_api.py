"""/admin/clients: list, add, read, update, remove, and rotate a secret with an overlap.

The rules are the command line's (``authsvc.cli_clients``): the same checks of
redirect URIs, origins and grants; an update writes only the members sent, in
one statement, so two admins editing different fields both land.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from authsvc.admin.body import json_body, optional, string_list
from authsvc.admin.context import AdminContext, ok
from authsvc.admin.problems import Problem
from authsvc.client_rules import InvalidClientSetting, check_origin, check_redirect_uri
from authsvc.client_secrets import generate_secret, hash_generated
from authsvc.grants import GRANT_TYPES
from authsvc.scopes import is_scope_token
from authsvc.store.records import Client, ClientChanges
from authsvc.store.sql.clients import DuplicateClient

__all__ = [
    "add_client",
    "client_json",
    "get_client",
    "list_clients",
    "remove_client",
    "rotate_secret",
    "update_client",
]

_EDITABLE = (
    "grant_types",
    "scopes",
    "audiences",
    "access_token_ttl",
    "redirect_uris",
    "post_logout_redirect_uris",
    "web_origins",
    "first_party",
    "require_par",
    "require_dpop",
)
MAX_OVERLAP = 30 * 86400


def client_json(client: Client) -> dict[str, Any]:
    return {
        "client_id": client.id,
        "public": client.public,
        "grant_types": sorted(client.grant_types),
        "scopes": sorted(client.scopes or ()),
        "audiences": list(client.audiences),
        "access_token_ttl": client.access_token_ttl,
        "redirect_uris": list(client.redirect_uris),
        "post_logout_redirect_uris": list(client.post_logout_redirect_uris),
        "web_origins": list(client.web_origins),
        "first_party": client.first_party,
        "require_par": client.require_par,
        "require_dpop": client.require_dpop,
        "private_key_jwt": client.jwks is not None or client.jwks_uri is not None,
        "previous_secret_until": client.previous_secret_until,
    }


def _changes(body: dict[str, Any]) -> ClientChanges:
    """The members of ``body`` as a checked ClientChanges (the command line's rules)."""
    try:
        grants = string_list(body, "grant_types")
        if grants is not None and not set(grants) <= set(GRANT_TYPES):
            raise Problem(400, "grant_types names an unknown grant type.")
        scopes = string_list(body, "scopes")
        if scopes is not None and not all(is_scope_token(s) for s in scopes):
            raise Problem(400, "scopes must be scope tokens.")
        audiences = string_list(body, "audiences")
        if audiences is not None and not all(is_scope_token(a) for a in audiences):
            raise Problem(400, "audiences must be printable without spaces.")
        redirects = string_list(body, "redirect_uris")
        logouts = string_list(body, "post_logout_redirect_uris")
        origins = string_list(body, "web_origins")
        ttl = optional(body, "access_token_ttl", int)
        if ttl is not None and not 1 <= ttl <= 86400:
            raise Problem(400, "access_token_ttl must be 1 to 86400 seconds.")
        return ClientChanges(
            grant_types=frozenset(grants) if grants is not None else None,
            scopes=frozenset(scopes) if scopes is not None else None,
            audiences=tuple(dict.fromkeys(audiences)) if audiences is not None else None,
            access_token_ttl=ttl,
            redirect_uris=_uris("redirect_uris", redirects),
            post_logout_redirect_uris=_uris("post_logout_redirect_uris", logouts),
            web_origins=tuple(dict.fromkeys(check_origin(o) for o in origins))
            if origins is not None
            else None,
            first_party=optional(body, "first_party", bool),
            require_par=optional(body, "require_par", bool),
            require_dpop=optional(body, "require_dpop", bool),
        )
    except InvalidClientSetting as bad:
        raise Problem(400, str(bad).split(":", 1)[-1].strip() or "A member is invalid.") from None


def _uris(name: str, values: list[str] | None) -> tuple[str, ...] | None:
    return tuple(dict.fromkeys(check_redirect_uri(name, u) for u in values)) if values is not None else None


async def list_clients(ctx: AdminContext, request: Request) -> Response:
    await ctx.admin(request)
    return ok({"clients": [client_json(c) for c in await ctx.services.clients.store.list()]})


async def get_client(ctx: AdminContext, request: Request) -> Response:
    await ctx.admin(request)
    client = await ctx.services.clients.store.get(request.path_params["client_id"])
    if client is None:
        raise Problem(404, "No such client.")
    return ok(client_json(client))


async def add_client(ctx: AdminContext, request: Request) -> Response:
    admin = await ctx.admin(request)
    body = await json_body(request, ("client_id", "public", *_EDITABLE))
    client_id = optional(body, "client_id", str)
    if not client_id or len(client_id) > 200 or any(c.isspace() or not c.isprintable() for c in client_id):
        raise Problem(400, "client_id must be 1 to 200 printable characters without spaces.")
    services = ctx.services
    if client_id == services.settings.default_client_id or await services.users.by_id(client_id) is not None:
        raise Problem(409, "That id is taken.")
    public = optional(body, "public", bool) or False
    changes = _changes(body)
    grants = changes.grant_types or frozenset({"refresh_token"} if public else {"client_credentials"})
    if public and "client_credentials" in grants:
        raise Problem(400, "A public client cannot use client_credentials.")
    if "authorization_code" in grants and not changes.redirect_uris:
        raise Problem(400, "The authorization_code grant needs redirect_uris.")
    secret = None if public else generate_secret()
    client = Client(
        id=client_id,
        public=public,
        grant_types=grants,
        scopes=changes.scopes or frozenset(),
        audiences=changes.audiences or (),
        access_token_ttl=changes.access_token_ttl,
        secret_hash=hash_generated(secret) if secret else None,
        redirect_uris=changes.redirect_uris or (),
        post_logout_redirect_uris=changes.post_logout_redirect_uris or (),
        web_origins=changes.web_origins or (),
        first_party=bool(changes.first_party),
        require_par=bool(changes.require_par),
        require_dpop=bool(changes.require_dpop),
    )
    try:
        await services.clients.store.add(client, services.clock.now())
    except DuplicateClient:
        raise Problem(409, "That id is taken (removed ids are never reused).") from None
    services.clients.forget()
    ctx.audit(admin, "client.add", client_id)
    answer = client_json(client)
    if secret is not None:
        answer["client_secret"] = secret  # shown once
    return ok(answer, 201)


async def update_client(ctx: AdminContext, request: Request) -> Response:
    admin = await ctx.admin(request)
    client_id = request.path_params["client_id"]
    changes = _changes(await json_body(request, _EDITABLE))
    services = ctx.services
    updated = await services.clients.store.update(client_id, changes, services.clock.now())
    if updated is None:
        raise Problem(404, "No such client.")
    services.clients.forget()
    ctx.audit(admin, "client.update", client_id)
    return ok(client_json(updated))


async def remove_client(ctx: AdminContext, request: Request) -> Response:
    admin = await ctx.admin(request)
    client_id = request.path_params["client_id"]
    services = ctx.services
    revoked = await services.clients.store.remove(client_id, services.clock.now())
    if revoked is None:
        raise Problem(404, "No such client.")
    services.clients.forget()
    ctx.audit(admin, "client.remove", client_id)
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


async def rotate_secret(ctx: AdminContext, request: Request) -> Response:
    admin = await ctx.admin(request)
    client_id = request.path_params["client_id"]
    overlap = optional(await json_body(request, ("overlap",)), "overlap", int) or 0
    if not 0 <= overlap <= MAX_OVERLAP:
        raise Problem(400, "overlap must be 0 to 30 days in seconds.")
    services = ctx.services
    client = await services.clients.store.get(client_id)
    if client is None:
        raise Problem(404, "No such client.")
    if client.public or client.secret_hash is None:
        raise Problem(409, "This client has no secret.")
    secret = generate_secret()
    now = services.clock.now()
    await services.clients.store.rotate_secret(client_id, hash_generated(secret), now + overlap, now)
    services.clients.forget()
    ctx.audit(admin, "client.rotate_secret", client_id)
    return ok(
        {
            "client_id": client_id,
            "client_secret": secret,
            "previous_secret_until": now + overlap if overlap else None,
        }
    )
