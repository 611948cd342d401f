"""The authorization code flow's decisions: who is signed in, what to ask, when to issue a code.

Each call returns the next ``Step`` for the HTTP glue (``api.authorize``) to
render: the login page, the consent page, or a redirect to the client (a code
or an error, always with ``state`` and ``iss``). A request waiting for the
person (an "interaction") is stored server-side under the digest of a handle
the page carries; it remembers which browser session signed in for it, so
consent can only be given by that browser.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from authsvc.browser.cookies import digest, new_handle
from authsvc.browser.redirects import with_query
from authsvc.browser.requests import (
    OIDC_SCOPES,
    AuthorizationError,
    AuthorizationRequest,
    Untrusted,
    read_request,
    trusted_redirect,
)
from authsvc.clients import ClientDirectory
from authsvc.clock import Clock
from authsvc.errors import InvalidGrant, LoginRateLimited
from authsvc.events import BrowserSignedIn, CodeIssued, ConsentDenied, ConsentGiven, Events
from authsvc.scopes import scope_str
from authsvc.sign_in import BAD_CREDENTIALS, PasswordCheck
from authsvc.store.protocols import UserStore
from authsvc.store.records import AuthorizationCode, BrowserSession, Client, PendingRequest, User
from authsvc.store.sql.browser import SqlBrowserStore

__all__ = ["PAR_PREFIX", "BrowserFlow", "Consent", "Login", "Redirect", "SignedIn", "Step"]

PAR_PREFIX = "urn:ietf:params:oauth:request_uri:"
INTERACTION_TTL = 600  # seconds a person has to sign in and decide


@dataclass(frozen=True, slots=True)
class Login:
    handle: str  # the interaction
    client: Client
    username: str = ""
    error: str | None = None
    retry_after: int | None = None  # the login limits refused the attempt


@dataclass(frozen=True, slots=True)
class Consent:
    handle: str
    client: Client
    user: User
    scopes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Redirect:
    location: str


Step = Login | Consent | Redirect


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A sign-in's result: the next step and the new browser session's cookie value."""

    step: Step
    session_handle: str | None


@dataclass(frozen=True, slots=True)
class _Interaction:
    request: AuthorizationRequest
    browser_session_id: str | None  # the session that signed in for it (consent must come from it)

    def to_json(self) -> str:
        return json.dumps({"request": self.request.to_json(), "browser_session_id": self.browser_session_id})

    @classmethod
    def from_json(cls, text: str) -> _Interaction:
        data = json.loads(text)
        return cls(AuthorizationRequest.from_json(data["request"]), data["browser_session_id"])


class BrowserFlow:
    def __init__(
        self,
        store: SqlBrowserStore,
        clients: ClientDirectory,
        users: UserStore,
        passwords: PasswordCheck,
        clock: Clock,
        events: Events,
        *,
        issuer: str,
        code_ttl: int,
        session_ttl: int,
    ) -> None:
        self.store = store
        self.clients = clients
        self.users = users
        self.passwords = passwords
        self.clock = clock
        self.events = events
        self.issuer = issuer
        self.code_ttl = code_ttl
        self.session_ttl = session_ttl

    # --- the browser session ------------------------------------------------------------
    async def signed_in(self, handle: str | None) -> tuple[BrowserSession, User] | None:
        """The live browser session the cookie names, and its user; None if ended or stale.

        A password change or disable ends every browser session of the user (the
        credentials version it saw is no longer current).
        """
        if not handle:
            return None
        session = await self.store.browser_session(digest(handle))
        now = self.clock.now()
        if session is None or session.revoked_at is not None or session.expires_at <= now:
            return None
        user = await self.users.by_id(session.user_id)
        if user is None or user.disabled or user.credentials_version != session.credentials_version:
            return None
        return session, user

    # --- /authorize ------------------------------------------------------------------------
    async def authorize(
        self, values: Mapping[str, str], repeated: frozenset[str], session_handle: str | None
    ) -> Step:
        """A new authorization request (Untrusted when it cannot be answered by redirect)."""
        client = await self.clients.get(values["client_id"]) if "client_id" in values else None
        now = self.clock.now()
        if "request_uri" in values:
            values, repeated = await self._pushed(values, repeated, client, now)
            pushed = True
        else:
            pushed = False
        try:
            request = read_request(values, repeated, client, pushed=pushed)
        except AuthorizationError as error:
            _client, redirect_uri = trusted_redirect(values, repeated, client)
            return self._error(redirect_uri, values.get("state"), error)
        assert client is not None
        try:
            return await self._continue(request, client, session_handle, now)
        except AuthorizationError as error:
            return self._error(request.redirect_uri, request.state, error)

    async def _pushed(
        self, values: Mapping[str, str], repeated: frozenset[str], client: Client | None, now: float
    ) -> tuple[dict[str, str], frozenset[str]]:
        """The parameters a client pushed (RFC 9126), taken once."""
        uri = values["request_uri"]
        if client is None or "authorization_code" not in client.grant_types:
            raise Untrusted("The application that sent you here is not known to this server.")
        if "request_uri" in repeated or not uri.startswith(PAR_PREFIX):
            raise Untrusted("The request_uri is not valid.")
        request_id = digest(uri.removeprefix(PAR_PREFIX))
        # The client is checked before the request is used up: another client's id cannot burn it.
        found = await self.store.pending(request_id, "par", now)
        pushed = (
            await self.store.take_pending(request_id, "par", now)
            if found and found.client_id == client.id
            else None
        )
        if pushed is None:
            # Not a redirect: without the pushed parameters there is no trusted redirect URI.
            raise Untrusted("This sign-in request has expired or was already used. Start again.")
        return json.loads(pushed.parameters), frozenset()

    async def push(
        self, values: Mapping[str, str], repeated: frozenset[str], client: Client, dpop_jkt: str | None = None
    ) -> tuple[str, int]:
        """Store a pushed request (checked as /authorize would); its request_uri and lifetime.
        ``dpop_jkt``: the key of a DPoP proof sent with the push, to which the code is bound
        (RFC 9449 §10.1); a ``dpop_jkt`` parameter must then name that key."""
        if dpop_jkt is not None:
            if values.get("dpop_jkt", dpop_jkt) != dpop_jkt:
                raise AuthorizationError("invalid_request", "The dpop_jkt does not match the DPoP proof.")
            values = {**values, "dpop_jkt": dpop_jkt}
        if "request_uri" in values:
            raise AuthorizationError("invalid_request", "A pushed request cannot carry request_uri.")
        if values.get("client_id", client.id) != client.id:
            raise AuthorizationError("invalid_request", "The client_id does not match the client.")
        try:
            read_request({**values, "client_id": client.id}, repeated, client, pushed=True)
        except Untrusted as untrusted:
            raise AuthorizationError("invalid_request", untrusted.message) from None
        handle = new_handle()
        ttl = 60
        await self.store.add_pending(
            PendingRequest(
                id=digest(handle),
                client_id=client.id,
                parameters=json.dumps({**values, "client_id": client.id}),
                expires_at=self.clock.now() + ttl,
                kind="par",
            )
        )
        return PAR_PREFIX + handle, ttl

    async def _continue(
        self,
        request: AuthorizationRequest,
        client: Client,
        session_handle: str | None,
        now: float,
        *,
        fresh: bool = False,
    ) -> Step:
        found = await self.signed_in(session_handle)
        if found is not None and not fresh:
            session, _user = found
            too_old = request.max_age is not None and now - session.auth_time > request.max_age
            if "login" in request.prompt or too_old:
                found = None
        if found is None:
            if "none" in request.prompt:
                raise AuthorizationError("login_required", "The user is not signed in.")
            handle = await self._remember(request, None, now)
            return Login(handle, client, username=request.login_hint or "")
        session, user = found
        scopes = _granted(request, client, user)
        if not client.first_party:
            consent = await self.store.consent(user.id, client.id)
            if "consent" in request.prompt or consent is None or not scopes <= consent.scopes:
                if "none" in request.prompt:
                    raise AuthorizationError("consent_required", "The user has not consented.")
                handle = await self._remember(request, session.id, now)
                return Consent(handle, client, user, tuple(sorted(scopes, key=_consent_order)))
        return await self._issue(request, client, session, user, scopes, now)

    async def _remember(
        self, request: AuthorizationRequest, browser_session_id: str | None, now: float
    ) -> str:
        handle = new_handle()
        await self.store.add_pending(
            PendingRequest(
                id=digest(handle),
                client_id=request.client_id,
                parameters=_Interaction(request, browser_session_id).to_json(),
                expires_at=now + INTERACTION_TTL,
                kind="interaction",
            )
        )
        return handle

    # --- the pages' answers --------------------------------------------------------------
    async def interaction(self, handle: str) -> tuple[_Interaction, Client]:
        """The pending request a page carries; Untrusted when it expired or its client is gone."""
        pending = await self.store.pending(digest(handle), "interaction", self.clock.now())
        client = await self.clients.get(pending.client_id) if pending is not None else None
        if pending is None or client is None:
            raise Untrusted("This sign-in page has expired. Go back to the application and start again.")
        return _Interaction.from_json(pending.parameters), client

    async def sign_in(self, handle: str, username: str, password: str, address: str) -> SignedIn:
        """The login form: the same checks, limits and costs as the password grant."""
        interaction, client = await self.interaction(handle)
        try:
            user = await self.passwords.user(username, password, address=address, client_id=client.id)
        except LoginRateLimited as limited:
            return SignedIn(Login(handle, client, username, BAD_CREDENTIALS, limited.retry_after), None)
        except InvalidGrant:
            return SignedIn(Login(handle, client, username, BAD_CREDENTIALS), None)
        now = self.clock.now()
        session_handle = new_handle()
        session = BrowserSession(
            id=digest(session_handle),
            user_id=user.id,
            auth_time=now,
            expires_at=now + self.session_ttl,
            credentials_version=user.credentials_version,
        )
        await self.store.add_browser_session(session)
        self.events.publish(BrowserSignedIn(user_id=user.id, client_id=client.id))
        await self.store.take_pending(digest(handle), "interaction", now)
        request = interaction.request
        try:
            step = await self._continue(request, client, session_handle, now, fresh=True)
        except AuthorizationError as error:
            step = self._error(request.redirect_uri, request.state, error)
        return SignedIn(step, session_handle)

    async def decide(self, handle: str, session_handle: str | None, allow: bool) -> Step:
        """The consent form: only the browser session that signed in for the request may answer."""
        interaction, client = await self.interaction(handle)
        found = await self.signed_in(session_handle)
        if found is None or found[0].id != interaction.browser_session_id:
            raise Untrusted(
                "This page belongs to another sign-in. Go back to the application and start again."
            )
        session, user = found
        now = self.clock.now()
        if await self.store.take_pending(digest(handle), "interaction", now) is None:
            raise Untrusted("This sign-in page has expired. Go back to the application and start again.")
        request = interaction.request
        if not allow:
            self.events.publish(ConsentDenied(user_id=user.id, client_id=client.id))
            return self._error(
                request.redirect_uri,
                request.state,
                AuthorizationError("access_denied", "The user denied the request."),
            )
        try:
            scopes = _granted(request, client, user)
        except AuthorizationError as error:
            return self._error(request.redirect_uri, request.state, error)
        await self.store.grant_consent(user.id, client.id, scopes, now)
        self.events.publish(ConsentGiven(user_id=user.id, client_id=client.id, scope=scope_str(scopes)))
        return await self._issue(request, client, session, user, scopes, now)

    # --- answers to the client ------------------------------------------------------------
    async def _issue(
        self,
        request: AuthorizationRequest,
        client: Client,
        session: BrowserSession,
        user: User,
        scopes: frozenset[str],
        now: float,
    ) -> Redirect:
        code = new_handle()
        await self.store.add_code(
            AuthorizationCode(
                id=digest(code),
                client_id=client.id,
                redirect_uri=request.redirect_uri,
                code_challenge=request.code_challenge,
                nonce=request.nonce,
                scope=scope_str(scopes),
                user_id=user.id,
                browser_session_id=session.id,
                auth_time=session.auth_time,
                credentials_version=session.credentials_version,
                expires_at=now + self.code_ttl,
                dpop_jkt=request.dpop_jkt,
            )
        )
        self.events.publish(CodeIssued(user_id=user.id, client_id=client.id))
        return Redirect(
            with_query(request.redirect_uri, {"code": code, "state": request.state, "iss": self.issuer})
        )

    def _error(self, redirect_uri: str, state: str | None, error: AuthorizationError) -> Redirect:
        return Redirect(
            with_query(
                redirect_uri,
                {
                    "error": error.error,
                    "error_description": error.description,
                    "state": state,
                    "iss": self.issuer,
                },
            )
        )


_OIDC_ORDER = ("openid", "profile", "email", "offline_access")


def _consent_order(scope: str) -> tuple[int, str]:
    """The consent page lists who you are first, then the rest by name."""
    return (_OIDC_ORDER.index(scope), "") if scope in _OIDC_ORDER else (len(_OIDC_ORDER), scope)


def _granted(request: AuthorizationRequest, client: Client, user: User) -> frozenset[str]:
    """The scopes a code carries: asked for (or all allowed), within what both the client
    and the user may have (the OpenID scopes need no grant on the user)."""
    allowed = user.scopes | OIDC_SCOPES
    if client.scopes is not None:
        allowed &= client.scopes
    requested = request.requested_scopes
    if requested is None:
        return allowed
    if not requested <= allowed:
        raise AuthorizationError("invalid_scope", "The user may not have that scope.")
    return requested
