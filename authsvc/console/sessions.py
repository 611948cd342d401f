"""Console sessions: the admin's access token kept in this process, a random cookie naming it.

The browser holds only a 256-bit handle in ``authsvc_console`` (``__Host-`` and
``Secure`` on https; HttpOnly; SameSite=Strict, so no other site's page can
use it); the session, found by the handle's SHA-256, holds the access token,
the ID token (for the sign-out), who signed in, the CSRF token of its forms
and the messages waiting for the next page. It lasts as long as the token.
Sessions live in the memory of the process that signed in (a ``--workers N``
server keeps one set per worker).
"""

from __future__ import annotations

import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field

from authsvc.browser.cookies import digest, new_handle

__all__ = ["MAX_SESSIONS", "ConsoleSession", "ConsoleSessions", "cookie_name"]

MAX_SESSIONS = 1000  # the oldest session goes first beyond this


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

    def csrf_valid(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(self.csrf.encode(), token.encode())

    def say(self, text: str, kind: str = "ok") -> None:
        self.messages.append((kind, text))

    def take_messages(self) -> list[tuple[str, str]]:
        taken, self.messages = self.messages, []
        return taken


class ConsoleSessions:
    def __init__(self) -> None:
        self._sessions: OrderedDict[str, ConsoleSession] = OrderedDict()

    def add(self, session: ConsoleSession, now: float) -> str:
        """Keep ``session``; the handle for the cookie."""
        self._sweep(now)
        while len(self._sessions) >= MAX_SESSIONS:
            self._sessions.popitem(last=False)
        handle = new_handle()
        self._sessions[digest(handle)] = session
        return handle

    def get(self, handle: str | None, now: float) -> ConsoleSession | None:
        if not handle:
            return None
        key = digest(handle)
        session = self._sessions.get(key)
        if session is not None and session.expires_at <= now:
            del self._sessions[key]
            return None
        return session

    def end(self, handle: str | None) -> ConsoleSession | None:
        return self._sessions.pop(digest(handle), None) if handle else None

    def _sweep(self, now: float) -> None:
        for key in [k for k, s in self._sessions.items() if s.expires_at <= now]:
            del self._sessions[key]
