"""/admin/keys: the timetable, a forced rotation, an emergency revocation.

Rotation and revocation are the same functions ``keys rotate`` and ``keys
revoke`` run (under the key store's lock, on a worker thread); every server
sees the change within a second.
"""

from __future__ import annotations

import anyio
from starlette.requests import Request
from starlette.responses import Response

from authsvc.admin.body import json_body, optional
from authsvc.admin.context import AdminContext, ok
from authsvc.admin.keys_view import key_timeline
from authsvc.admin.problems import Problem
from authsvc.keys.rotation import revoke_key, rotate
from authsvc.keys.setup import build_key_store, lifetimes

__all__ = ["list_keys", "revoke", "rotate_keys"]


async def list_keys(ctx: AdminContext, request: Request) -> Response:
    await ctx.admin(request)
    services = ctx.services
    store = services.key_watcher.store
    doc = await anyio.to_thread.run_sync(store.read)
    return ok(key_timeline(doc, lifetimes(services.settings), services.clock.now()))


async def rotate_keys(ctx: AdminContext, request: Request) -> Response:
    admin = await ctx.admin(request)
    force = optional(await json_body(request, ("force",)), "force", bool) or False
    settings, clock = ctx.services.settings, ctx.services.clock

    def run() -> list[str]:
        store = build_key_store(settings, ctx.services.session_store.db.engine)
        changes = rotate(
            store,
            lifetimes(settings),
            clock,
            settings.signing_alg,
            settings.passphrase_bytes,
            force=force,
            standby=settings.key_standby,
        )
        return [str(change) for change in changes]

    changes = await anyio.to_thread.run_sync(run)
    ctx.audit(admin, "key.rotate", "force" if force else "scheduled")
    return ok({"changes": changes})


async def revoke(ctx: AdminContext, request: Request) -> Response:
    admin = await ctx.admin(request)
    kid = request.path_params["kid"]
    settings, clock = ctx.services.settings, ctx.services.clock

    def run() -> list[str] | None:
        store = build_key_store(settings, ctx.services.session_store.db.engine)
        if not any(record.kid == kid for record in store.read().keys):
            return None
        changes = revoke_key(
            store, kid, clock, settings.signing_alg, settings.passphrase_bytes, standby=settings.key_standby
        )
        return [str(change) for change in changes]

    changes = await anyio.to_thread.run_sync(run)
    if changes is None:
        raise Problem(404, "No such key.")
    ctx.audit(admin, "key.revoke", kid)
    return ok({"changes": changes})
