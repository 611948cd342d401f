"""One process, two listeners: the public port and the admin port (``AUTHSVC_ADMIN_BIND``).

uvicorn serves both sockets with one ASGI app; this app sends each request to
the public app or the admin app by the port it arrived on (the listening
socket's, from the ASGI ``server`` — never a header a client could set). The
lifespan is the public app's: it builds the services both use.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from authsvc.api.form import MAX_BODY
from authsvc.api.guard import Guard

__all__ = ["Listeners"]


class Listeners:
    def __init__(self, public: ASGIApp, admin: ASGIApp, admin_port: int) -> None:
        self.public = public
        self.admin = Guard(admin, max_body=MAX_BODY)  # the same size limits as the public port
        self.admin_port = admin_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server")
        if scope["type"] in ("http", "websocket") and server is not None and server[1] == self.admin_port:
            await self.admin(scope, receive, send)
        else:
            await self.public(scope, receive, send)
