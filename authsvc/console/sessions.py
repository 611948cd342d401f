"""Console sessions: the admin's access token kept server-side, a random cookie naming it.

The browser holds only a 256-bit handle in ``authsvc_console`` (``__Host-`` and
``Secure`` on https; HttpOnly; SameSite=Strict, so no other site's page can
use it); the session, found by the handle's SHA-256, holds the access token,
the ID token (for the sign-out), who signed in, the CSRF token of its forms
and the messages waiting for the next page. It lasts as long as the token.
Sessions live in the database (the pending-requests table, kind ``console``),
so every worker of ``serve --workers N`` and every instance finds them; the row
is sealed (AES-GCM) with a key derived from the handle, which only the browser
holds, so a copy of the database reveals no admin's token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from authsvc.browser.cookies import digest, new_handle
from authsvc.store.records import PendingRequest
from authsvc.store.sql.browser import SqlBrowserStore

__all__ = ["ConsoleSession", "ConsoleSessions", "cookie_name"]

_KIND = "console"
_OWNER = "authsvc-console"


def _seal(handle: str, text: str) -> str:
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(_key(handle)).encrypt(nonce, text.encode(), b"authsvc-console")
    return base64.urlsafe_b64encode(nonce + sealed).decode()


def _open(handle: str, sealed: str) -> str:
    raw = base64.urlsafe_b64decode(sealed.encode())
    return AESGCM(_key(handle)).decrypt(raw[:12], raw[12:], b"authsvc-console").decode()


def _key(handle: str) -> bytes:
    # Another derivation than the row's id (a plain SHA-256 of the handle): the id does not give the key.
    return hashlib.sha256(b"authsvc console session key\x00" + handle.encode()).digest()


def cookie_name(base: str, secure: bool) -> str:
    return f"__Host-{base}" if secure else base


@dataclass
class ConsoleSession:
    access_token: str
    id_token: str | None
    sub: str
    username: str
    expires_at: float
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    messages: list[tuple[str, str]] = field(default_factory=list)  # (kind, text) for the next page
    # Not stored: the cookie's handle, and whether the messages changed since it was read.
    handle: str = field(default="", compare=False)
    dirty: bool = field(default=False, compare=False)

    def csrf_valid(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(self.csrf.encode(), token.encode())

    def say(self, text: str, kind: str = "ok") -> None:
        self.messages.append((kind, text))
        self.dirty = True

    def take_messages(self) -> list[tuple[str, str]]:
        taken, self.messages = self.messages, []
        self.dirty = self.dirty or bool(taken)
        return taken

    def to_json(self) -> str:
        data = asdict(self)
        del data["handle"], data["dirty"]
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str, handle: str) -> ConsoleSession:
        data = json.loads(text)
        data["messages"] = [(kind, message) for kind, message in data["messages"]]
        return cls(**data, handle=handle)


class ConsoleSessions:
    """The sessions, in the database through the browser store (its sweeper deletes expired ones)."""

    def __init__(self, store: Callable[[], SqlBrowserStore]) -> None:
        self._store = store  # the running service's store (built by the public app's lifespan)

    async def add(self, session: ConsoleSession, now: float) -> str:
        """Keep ``session``; the handle for the cookie."""
        handle = new_handle()
        session.handle = handle
        await self._store().add_pending(
            PendingRequest(
                id=digest(handle),
                client_id=_OWNER,
                parameters=_seal(handle, session.to_json()),
                expires_at=session.expires_at,
                kind=_KIND,
            )
        )
        return handle

    async def get(self, handle: str | None, now: float) -> ConsoleSession | None:
        if not handle:
            return None
        found = await self._store().pending(digest(handle), _KIND, now)
        return (
            ConsoleSession.from_json(_open(handle, found.parameters), handle) if found is not None else None
        )

    async def save(self, session: ConsoleSession) -> None:
        """Write back what changed (the messages for the next page)."""
        if session.dirty and session.handle:
            await self._store().replace_pending(
                digest(session.handle), _seal(session.handle, session.to_json())
            )
            session.dirty = False

    async def end(self, handle: str | None, now: float) -> None:
        if handle:
            await self._store().take_pending(digest(handle), _KIND, now)
