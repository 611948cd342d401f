"""The browser's cookies and the CSRF token bound to one of them.

``authsvc_session`` holds a browser session's secret handle (only its SHA-256
is stored); ``authsvc_csrf`` holds a random binding from which the pages'
CSRF tokens are derived, one per pending request. A form posted from another
site carries neither a matching token nor (SameSite=Lax) the cookie. On an
https issuer both take the ``__Host-`` prefix and ``Secure`` (and so ``Path=/``,
which the prefix requires); otherwise their path is the issuer's path, if any.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from starlette.responses import Response

__all__ = ["Cookies", "digest", "new_handle"]


def new_handle() -> str:
    """A secret handle for a browser or client to hold (256 bits)."""
    return secrets.token_urlsafe(32)


def digest(handle: str) -> str:
    """What is stored for a handle: its SHA-256, hex."""
    return hashlib.sha256(handle.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class Cookies:
    secure: bool
    session_ttl: int
    path: str = ""  # the issuer's path ("/auth"); "" for a bare origin

    @property
    def session(self) -> str:
        return "__Host-authsvc_session" if self.secure else "authsvc_session"

    @property
    def csrf(self) -> str:
        return "__Host-authsvc_csrf" if self.secure else "authsvc_csrf"

    def set_session(self, response: Response, handle: str) -> None:
        self._set(response, self.session, handle, self.session_ttl)

    def clear_session(self, response: Response) -> None:
        self._set(response, self.session, "", 0)

    def set_csrf(self, response: Response, binding: str) -> None:
        self._set(response, self.csrf, binding, None)  # a browser-session cookie

    def _set(self, response: Response, name: str, value: str, max_age: int | None) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/" if self.secure or not self.path else self.path,  # __Host- requires Path=/
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )

    @staticmethod
    def csrf_token(binding: str, request_handle: str) -> str:
        """The token a page's form carries: bound to the cookie and to its pending request."""
        mac = hmac.new(binding.encode(), request_handle.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    @classmethod
    def csrf_valid(cls, binding: str | None, request_handle: str, token: str | None) -> bool:
        if not binding or not token:
            return False
        return hmac.compare_digest(cls.csrf_token(binding, request_handle), token)
