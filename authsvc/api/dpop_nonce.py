"""``DPoP-Nonce`` on every answer to a request that carried a DPoP proof, while server nonces are
demanded (RFC 9449 §8.2: the client learns the next nonce from any answer, success or error)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authsvc.api.scope_headers import raw_header

__all__ = ["DpopNonceHeader"]


class DpopNonceHeader:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or raw_header(scope, b"dpop") is None:
            await self.app(scope, receive, send)
            return
        services = getattr(scope["app"].state, "services", None)
        nonce = services.dpop.nonce() if services is not None else None
        if nonce is None:
            await self.app(scope, receive, send)
            return

        async def send_with_nonce(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"dpop-nonce" for name, _ in headers):
                    headers.append((b"dpop-nonce", nonce.encode()))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_nonce)
