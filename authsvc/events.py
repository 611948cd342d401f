"""Typed audit events and the bus that delivers them.

Code that does something an operator may need to audit publishes an event;
subscribers decide what it becomes. ``audit_log`` writes the JSON line of the
``authsvc.audit`` logger (README: Audit trail); the server's ``Metrics``
counts the ones it alerts on. So a metric never parses a log string back, and
an event's fields are checked by the type checker.

No event carries a secret: identifiers only (user, client, session, kid),
never a token, password or key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import ClassVar

__all__ = [
    "AdminAction",
    "BrowserLoggedOut",
    "BrowserSignedIn",
    "ClientAdded",
    "ClientAuthRateLimited",
    "ClientRemoved",
    "ClientSecretRotated",
    "ClientTokenIssued",
    "ClientUpdated",
    "CodeIssued",
    "CodeRedeemed",
    "CodeReused",
    "ConsentDenied",
    "ConsentGiven",
    "ConsentRevoked",
    "DpopProofRefused",
    "Event",
    "Events",
    "KeyChanged",
    "LoginFailed",
    "LoginRateLimited",
    "LoginSucceeded",
    "RefreshReplayed",
    "RefreshReuseDetected",
    "RefreshRotated",
    "SessionStarted",
    "SessionsLoggedOut",
    "TokenRevoked",
    "UserDisabled",
    "UserEnabled",
    "audit_log",
]

log = logging.getLogger("authsvc")
_AUDIT = logging.getLogger("authsvc.audit")


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Something worth an audit line. ``name`` is the ``event`` of the line."""

    name: ClassVar[str]
    message: ClassVar[str]
    level: ClassVar[int] = logging.INFO

    def kind(self) -> str:
        return self.name

    def text(self) -> str:
        """The line's human-readable ``message``."""
        return self.message

    def severity(self) -> int:
        return self.level

    def identifiers(self) -> dict[str, object]:
        """The event's fields that are set."""
        values = {name: getattr(self, name) for name in _field_names(type(self))}
        return {name: value for name, value in values.items() if value is not None}


@dataclass(frozen=True, slots=True, kw_only=True)
class LoginSucceeded(Event):
    name = "login.succeeded"
    message = "login"
    user_id: str
    client_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LoginFailed(Event):
    name = "login.failed"
    message = "login failed"
    client_id: str
    user_id: str | None  # when the name exists


@dataclass(frozen=True, slots=True, kw_only=True)
class LoginRateLimited(Event):
    name = "login.rate_limited"
    message = "login refused by the failed-login limits"
    level = logging.WARNING


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientAuthRateLimited(Event):
    name = "client_auth.rate_limited"
    message = "client authentication refused by the failure limits"
    level = logging.WARNING


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionStarted(Event):
    name = "session.started"
    message = "session started"
    user_id: str
    client_id: str
    sid: str


@dataclass(frozen=True, slots=True, kw_only=True)
class _Refresh(Event):
    """What every refresh outcome names: the session and whose it is."""

    user_id: str | None
    client_id: str
    sid: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RefreshRotated(_Refresh):
    name = "refresh.rotated"
    message = "refresh"


@dataclass(frozen=True, slots=True, kw_only=True)
class RefreshReplayed(_Refresh):
    name = "refresh.replayed"
    message = "refresh"


@dataclass(frozen=True, slots=True, kw_only=True)
class RefreshReuseDetected(_Refresh):
    name = "refresh.reuse_detected"
    message = "refresh token reuse detected; session revoked"
    level = logging.WARNING


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenRevoked(Event):
    name = "token.revoked"
    message = "token revoked"
    token_use: str  # access_token | refresh_token
    client_id: str
    user_id: str | None  # a user's token
    sid: str | None

    def text(self) -> str:
        return f"{self.token_use.replace('_', ' ')} revoked"


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientTokenIssued(Event):
    """Routine traffic, every few minutes per service: DEBUG, not an audit line."""

    name = "token.client_credentials"
    message = "client token"
    level = logging.DEBUG
    client_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionsLoggedOut(Event):
    name = "session.logout"
    message = "sessions revoked"
    user_id: str
    count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class UserDisabled(Event):
    name = "user.disabled"
    message = "user disabled"
    user_id: str
    count: int  # sessions revoked


@dataclass(frozen=True, slots=True, kw_only=True)
class UserEnabled(Event):
    name = "user.enabled"
    message = "user enabled"
    user_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientAdded(Event):
    name = "client.added"
    message = "client added"
    client_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientUpdated(Event):
    name = "client.updated"
    message = "client updated"
    client_id: str
    changed: str | None = None  # the fields written, space-separated (never their values)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientSecretRotated(Event):
    name = "client.secret_rotated"
    message = "client secret rotated"
    client_id: str
    overlap: int  # seconds the previous secret keeps working (0: none)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientRemoved(Event):
    name = "client.removed"
    message = "client removed"
    client_id: str
    count: int  # sessions revoked


@dataclass(frozen=True, slots=True, kw_only=True)
class BrowserSignedIn(Event):
    """A person signed in on the hosted page: a browser session started."""

    name = "signin.succeeded"
    message = "browser sign-in"
    user_id: str
    client_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentGiven(Event):
    name = "consent.granted"
    message = "consent granted"
    user_id: str
    client_id: str
    scope: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentDenied(Event):
    name = "consent.denied"
    message = "consent denied"
    user_id: str
    client_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentRevoked(Event):
    name = "consent.revoked"
    message = "consent revoked"
    user_id: str
    client_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CodeIssued(Event):
    name = "code.issued"
    message = "authorization code issued"
    user_id: str
    client_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CodeRedeemed(Event):
    name = "code.redeemed"
    message = "authorization code redeemed"
    user_id: str
    client_id: str
    sid: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CodeReused(Event):
    """A code came back: the tokens of its first redemption are revoked (RFC 6749 §4.1.2)."""

    name = "code.reused"
    message = "authorization code reused; its tokens revoked"
    level = logging.WARNING
    user_id: str
    client_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BrowserLoggedOut(Event):
    name = "logout"
    message = "browser session ended"
    user_id: str
    count: int  # families revoked with it


@dataclass(frozen=True, slots=True, kw_only=True)
class DpopProofRefused(Event):
    """A DPoP proof refused at /token, /par or a protected route; ``reason`` is one of a fixed
    set (``authsvc.dpop``), so it is also the metric's label."""

    name = "dpop.refused"
    message = "DPoP proof refused"
    level = logging.WARNING
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminAction(Event):
    """A change made through the admin API: who made it (the token's subject), what, to what."""

    name = "admin.action"
    message = "admin change"
    admin: str
    action: str  # e.g. client.update, user.disable, key.revoke
    target: str


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyChanged(Event):
    """A change to the key set: created, signing, revoked, destroy-private, prune."""

    name = "key"
    message = "key changed"
    action: str
    kid: str
    alg: str | None = None
    emergency: bool = False  # `keys revoke`: logged as a warning

    def kind(self) -> str:
        return f"key.{self.action}"

    def text(self) -> str:
        return f"key {self.action}"

    def severity(self) -> int:
        return logging.WARNING if self.emergency else self.level

    def identifiers(self) -> dict[str, object]:
        return {"kid": self.kid, **({"alg": self.alg} if self.alg else {})}


def audit_log(event: Event) -> None:
    """The subscriber that writes the audit line (``authsvc.audit``; JSON when the service runs)."""
    level = event.severity()
    if _AUDIT.isEnabledFor(level):  # a DEBUG event on a hot path costs nothing more
        _AUDIT.log(level, event.text(), extra={"event": event.kind(), **event.identifiers()})


_FIELD_NAMES: dict[type[Event], tuple[str, ...]] = {}


def _field_names(kind: type[Event]) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(kind)
    if names is None:
        names = _FIELD_NAMES[kind] = tuple(f.name for f in fields(kind))
    return names


Subscriber = Callable[[Event], None]


class Events:
    """Delivers each published event to every subscriber, in order."""

    def __init__(self, subscribers: Iterable[Subscriber] = (audit_log,)) -> None:
        self._subscribers = list(subscribers)

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.remove(subscriber)

    def publish(self, event: Event) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:  # one broken subscriber must not fail the request or the others
                log.exception("event subscriber failed on %s", event.kind())
