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
from authsvc.client_rules import ClientOptions, InvalidClientSetting, client_changes, new_client
from authsvc.client_secrets import generate_secret, hash_generated
from authsvc.clients import built_in_client_ids
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
    "jwks_uri",
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


def _options(body: dict[str, Any]) -> ClientOptions:
    """The body's members as the command line's options (the same rules check both)."""
    scopes = string_list(body, "scopes")
    ttl = optional(body, "access_token_ttl", int)
    if ttl is not None and not 1 <= ttl <= 86400:
        raise Problem(400, "access_token_ttl must be 1 to 86400 seconds.")
    return ClientOptions(
        grants=string_list(body, "grant_types"),
        scope=" ".join(scopes) if scopes is not None else None,
        audiences=string_list(body, "audiences"),
        access_token_ttl=ttl,
        jwks_uri=optional(body, "jwks_uri", str),
        redirect_uris=string_list(body, "redirect_uris"),
        post_logout_redirect_uris=string_list(body, "post_logout_redirect_uris"),
        web_origins=string_list(body, "web_origins"),
        first_party=optional(body, "first_party", bool),
        require_par=optional(body, "require_par", bool),
        require_dpop=optional(body, "require_dpop", bool),
    )


def _checked(body: dict[str, Any], *, public: bool, current: Client | None) -> ClientChanges:
    try:
        return client_changes(_options(body), public=public, current=current)
    except InvalidClientSetting as bad:
        # The rule's text names the command-line option; the member is what the caller knows.
        raise Problem(400, str(bad).split(":", 1)[-1].strip() or "A member is invalid.") from None


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
    if (
        client_id in built_in_client_ids(services.settings)
        or await services.users.by_id(client_id) is not None
    ):
        raise Problem(409, "That id is taken.")
    public = optional(body, "public", bool) or False
    changes = _checked(body, public=public, current=None)
    secret = None if public or changes.jwks_uri else generate_secret()
    client = new_client(
        client_id, changes, public=public, secret_hash=hash_generated(secret) if secret else None
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
    body = await json_body(request, _EDITABLE)
    services = ctx.services
    current = await services.clients.store.get(client_id)
    if current is None:
        raise Problem(404, "No such client.")
    changes = _checked(body, public=current.public, current=current)
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
