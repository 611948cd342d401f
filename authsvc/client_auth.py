"""Client authentication at /token, /revoke and /introspect.

Methods: ``client_secret_basic`` (RFC 6749 §2.3.1: id and secret are
form-encoded before Basic encoding), ``client_secret_post``,
``private_key_jwt`` (RFC 7523) and, for public clients, ``none`` (just a
``client_id``). Using two methods at once is ``invalid_request``; an
``Authorization`` header with any scheme but Basic is ``invalid_client``. Every
failure is ``invalid_client`` (401 with ``WWW-Authenticate: Basic``).

A private_key_jwt client's keys are registered (``--jwks``) or fetched from
its ``jwks_uri`` (``authsvc.client_jwks``, the verifier's cache): a URI that
cannot be fetched finds no key, so it too is ``invalid_client``.

A method that checks a credential (a secret or an assertion) is subject to the
per-address failure limit of ``authsvc.login_limits``: a full address is
refused (429) before anything is checked, a failure is counted, and an
operator-chosen secret (an argon2 hash) is reserved like a login first.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote_plus

from authsvc.client_jwks import ClientKeySets
from authsvc.client_keys import registered_keys
from authsvc.client_secrets import is_costly, verify_secret
from authsvc.clients import ClientDirectory
from authsvc.clock import Clock
from authsvc.errors import InvalidClient, InvalidRequest
from authsvc.keys.ring import LoadedKey
from authsvc.login_limits import LoginLimiter
from authsvc.passwords import PasswordHasher
from authsvc.store.records import Client
from authsvc.tokens.validation import TokenRejected, check_token, peek_claims

__all__ = ["ASSERTION_TYPE", "ClientAuthenticator", "ClientIdentity"]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_LIFETIME = 3600


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    client: Client
    method: str  # client_secret_basic | client_secret_post | private_key_jwt | none | default


def _basic(header: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(header.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidClient(detail="malformed Basic credentials") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise InvalidClient(detail="malformed Basic credentials")
    return unquote_plus(client_id), unquote_plus(secret)


class ClientAuthenticator:
    def __init__(
        self,
        clients: ClientDirectory,
        hasher: PasswordHasher,
        clock: Clock,
        issuer: str,
        skew: int,
        limiter: LoginLimiter,
        key_sets: ClientKeySets | None = None,
    ) -> None:
        self.clients = clients
        # Keys of clients registered with --jwks-uri: one cache per URI, for this process.
        self.key_sets = key_sets if key_sets is not None else ClientKeySets(clock)
        self.hasher = hasher
        self.limiter = limiter
        self.clock = clock
        self.issuer = issuer
        self.audiences = frozenset({issuer, issuer + "/token"})
        self.skew = skew

    async def authenticate(
        self, authorization: str | None, form: Mapping[str, str], *, allow_default: bool, address: str
    ) -> ClientIdentity:
        basic = None
        if authorization is not None:
            scheme, _, credentials = authorization.partition(" ")
            if scheme.lower() != "basic":  # a bearer token here is never a client credential
                raise InvalidClient(detail="Authorization scheme is not Basic")
            basic = _basic(credentials)
        assertion = form.get("client_assertion")
        secret = form.get("client_secret")
        methods = sum(x is not None for x in (basic, assertion, secret))
        if methods > 1:
            raise InvalidRequest("Use exactly one client authentication method.")
        form_id = form.get("client_id")
        if methods:
            await self.limiter.check_client(address)
        if basic is not None:
            client_id, secret_value = basic
            if form_id is not None and form_id != client_id:
                raise InvalidRequest("The client_id parameter does not match the credentials.")
            client = await self._by_secret(client_id, secret_value, address)
            return ClientIdentity(client, "client_secret_basic")
        if secret is not None:
            if form_id is None:
                raise InvalidClient(detail="client_secret without client_id")
            return ClientIdentity(await self._by_secret(form_id, secret, address), "client_secret_post")
        if assertion is not None:
            try:
                if form.get("client_assertion_type") != ASSERTION_TYPE:
                    raise InvalidClient(detail="unsupported client_assertion_type")
                client = await self._by_assertion(assertion, form_id)
            except InvalidClient:
                await self.limiter.client_failed(address)
                raise
            return ClientIdentity(client, "private_key_jwt")
        if form_id is None:
            if not allow_default:
                raise InvalidClient(detail="no client authentication")
            return ClientIdentity(self.clients.default, "default")
        public = await self.clients.get(form_id)
        if public is None or not public.public:
            raise InvalidClient(detail="unknown client or authentication required")
        return ClientIdentity(public, "none")

    async def _by_secret(self, client_id: str, secret: str, address: str) -> Client:
        client = await self.clients.get(client_id)
        stored = client.secret_hash if client is not None and not client.public else None
        # A rotated secret's predecessor, while its overlap lasts (``clients rotate-secret``).
        previous = (
            client.previous_secret_hash
            if client is not None
            and client.previous_secret_until is not None
            and client.previous_secret_until > self.clock.now()
            else None
        )
        costly = is_costly(stored) or is_costly(previous)
        reserved = await self.limiter.reserve_client(address) if costly else None
        try:
            valid = await verify_secret(secret, stored, self.hasher)
            if not valid and previous is not None:
                valid = await verify_secret(secret, previous, self.hasher)
        except BaseException:
            if reserved is not None:
                await self.limiter.abandon(reserved)
            raise
        if not valid or client is None:
            await self.limiter.client_failed(address, reserved)
            raise InvalidClient(detail="bad client secret")
        if reserved is not None:
            await self.limiter.client_succeeded(reserved)
        return client

    async def _by_assertion(self, assertion: str, form_id: str | None) -> Client:
        peeked = peek_claims(assertion)
        if peeked is None:
            raise InvalidClient(detail="malformed client assertion")
        header, unverified = peeked
        client_id = unverified.get("iss")
        if not isinstance(client_id, str) or (form_id is not None and form_id != client_id):
            raise InvalidClient(detail="assertion issuer does not match client_id")
        client = await self.clients.get(client_id)
        if client is None or client.public or not (client.jwks or client.jwks_uri):
            raise InvalidClient(detail="client has no registered keys")
        key_for = await self._keys_of(client, header.get("kid", ""))
        now = self.clock.now()
        try:
            claims, _kid = check_token(
                assertion,
                typs=frozenset({"jwt", "client-authentication+jwt"}),
                key_for=key_for,
                issuer=client_id,
                now=now,
                skew=self.skew,
                required=("jti", "sub"),
                typ_required=False,
                iat_required=False,  # optional in RFC 7523 §3
            )
        except TokenRejected as exc:
            raise InvalidClient(detail=f"client assertion: {exc.reason}") from None
        if claims["sub"] != client_id:
            raise InvalidClient(detail="assertion sub is not the client")
        if _sole_audience(claims.get("aud")) not in self.audiences:
            raise InvalidClient(detail="assertion audience is not this server")
        exp = float(claims["exp"])
        if exp > now + MAX_ASSERTION_LIFETIME + self.skew:
            raise InvalidClient(detail="assertion lives too long")
        # Remembered as long as check_token could still accept it: exp plus the leeway.
        if not await self.clients.use_assertion(client_id, claims["jti"], exp + self.skew, now):
            raise InvalidClient(detail="client assertion replayed")
        return client

    async def _keys_of(self, client: Client, kid: object) -> Callable[[str], LoadedKey | None]:
        """How ``check_token`` finds the assertion's key: in the client's JWKS, or at its URI.

        ``kid`` is the header's ("" without one: then the client's only key). A key
        at a URI is looked up (and fetched if its cache allows) before the check,
        which is synchronous; a failed fetch finds no key.
        """
        if client.jwks_uri:
            found = await self.key_sets.key_for(client.jwks_uri, kid) if isinstance(kid, str) else None
            return lambda asked: found if found is not None and asked == kid else None
        keys = registered_keys(client.jwks or "")
        return lambda asked: (
            keys.get(asked) or (next(iter(keys.values())) if not asked and len(keys) == 1 else None)
        )


def _sole_audience(aud: object) -> str | None:
    """The one audience of an assertion: a string, or a list holding exactly one string.

    A list naming other parties too is refused (the audience-injection concern
    behind draft-ietf-oauth-rfc7523bis): the assertion must be meant for us alone.
    """
    if isinstance(aud, list) and len(aud) == 1:
        aud = aud[0]
    return aud if isinstance(aud, str) else None
