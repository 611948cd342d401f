"""FastAPI glue: a dependency for Bearer and DPoP tokens, with RFC 6750 and RFC 9449 errors.

Imported lazily by :meth:`Verifier.require` because FastAPI is not part of the
base install. The token is read from the ``Authorization`` header only, never
from the query string or a form (RFC 6750 §2.1; RFC 9700 §4.3.2). Challenges
for the Bearer scheme (and for requests without credentials):

- no (Bearer) credentials → 401 ``WWW-Authenticate: Bearer realm="…"``;
- a refused token → 401 ``…, error="invalid_token", error_description="…"``
  (a DPoP-bound token sent as Bearer too);
- a valid token without the scopes → 403 ``…, error="insufficient_scope", …, scope="…"``;
- two ``Authorization`` headers or an empty Bearer credential → 400 ``invalid_request``;
- no usable JWKS (the issuer is unreachable and the cache is gone) → 503
  ``temporarily_unavailable``: the token may be fine, so clients must not drop it.

``Authorization: DPoP <token>`` with one ``DPoP`` proof header (RFC 9449 §7.1)
gets the same answers under a ``DPoP realm="…", …, algs="…"`` challenge, plus:
a bad, missing or replayed proof → 401 ``invalid_dpop_proof``; an unbound token
→ 401 ``invalid_token``; a missing or stale server nonce → 401
``use_dpop_nonce`` with a ``DPoP-Nonce`` header (sent on successful DPoP
requests too, when the verifier demands nonces); two ``DPoP`` headers or an
empty credential → 400 ``invalid_request``. The proof's ``htu`` is compared
with the request's URL as the app sees it (scheme, ``Host``, path), or with
``public_url`` + path when given: set it behind a proxy, and wherever the
``Host`` header cannot be trusted.

FastAPI renders every ``HTTPException`` as ``{"detail": …}``;
:func:`install_error_handler` renders :class:`BearerError` as the RFC 6750 body
``{"error", "error_description"}`` instead. It also maps an
:class:`~authsvc.verifier.InvalidToken` that escapes a route or a dependency of
the app's own (one that calls ``verify()`` directly, async or sync) to the same
answers, where FastAPI would otherwise send a 500.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Final
from urllib.parse import quote, urlsplit

from fastapi import HTTPException, Request, Response, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from authsvc.dpop import DPOP_ALGS, DpopError, proof_header
from authsvc.rfc6750 import QUOTABLE, BearerProblem, bearer_token, challenge
from authsvc.scopes import is_scope_token
from authsvc.verifier.dpop import DPOP_SCHEME, DpopRequest
from authsvc.verifier.errors import InvalidToken

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from authsvc.verifier.verifier import Verifier

__all__ = [
    "BearerError",
    "DpopAuthError",
    "bearer_dependency",
    "bearer_error_handler",
    "dpop_challenge",
    "install_error_handler",
]

_RETRY_AFTER: Final = "5"
# Only for the OpenAPI security scheme; the dependency parses the header itself.
_OPENAPI_SCHEME: Final = HTTPBearer(auto_error=False, bearerFormat="JWT")
_ALGS: Final = " ".join(DPOP_ALGS)
_PROOF_ERRORS: Final = frozenset({"invalid_dpop_proof", "use_dpop_nonce"})
_UNAVAILABLE: Final = frozenset({"jwks_unavailable", "replay_cache_unavailable"})
# RFC 3986 pchar and "/": what a path keeps unencoded when rebuilt for ``htu``.
_PATH_SAFE: Final = "/!$&'()*+,;=:@-._~"


def dpop_challenge(
    realm: str, *, error: str | None = None, description: str | None = None, scope: str | None = None
) -> str:
    """``DPoP realm="…"[, error="…", error_description="…"][, scope="…"], algs="…"`` (RFC 9449 §7.1):
    RFC 6750's parameters under the DPoP scheme, then the proof algorithms accepted."""
    parameters = challenge(realm, error=error, description=description, scope=scope).removeprefix("Bearer ")
    return f'{DPOP_SCHEME} {parameters}, algs="{_ALGS}"'


class BearerError(HTTPException):
    """An RFC 6750 refusal: status, ``WWW-Authenticate`` challenge and JSON body."""

    def __init__(
        self,
        status_code: int,
        error: str,
        description: str,
        *,
        realm: str,
        challenge_error: bool = True,
        scope: str | None = None,
    ) -> None:
        if status_code == 503:
            headers = {"Retry-After": _RETRY_AFTER}
        else:
            value = self.challenge(realm, error=error, description=description, scope=scope)
            headers = {"WWW-Authenticate": value if challenge_error else self.challenge(realm, scope=scope)}
            headers.update(self.extra_headers())
        self.error = error
        self.description = description
        super().__init__(status_code, detail=self.body, headers=headers)

    @staticmethod
    def challenge(
        realm: str, *, error: str | None = None, description: str | None = None, scope: str | None = None
    ) -> str:
        """The ``WWW-Authenticate`` value of this scheme."""
        return challenge(realm, error=error, description=description, scope=scope)

    def extra_headers(self) -> dict[str, str]:
        """Headers beside the challenge (none for Bearer)."""
        return {}

    @property
    def body(self) -> dict[str, str]:
        """The RFC 6749 §5.2-style JSON error object."""
        return {"error": self.error, "error_description": self.description}

    @classmethod
    def from_invalid_token(cls, exc: InvalidToken, *, realm: str) -> BearerError:
        """Map a verifier refusal to its HTTP form, in the scheme the request used (``exc.scheme``)."""
        if exc.scheme == DPOP_SCHEME:
            return DpopAuthError.from_dpop_refusal(exc, realm=realm)
        if exc.reason in _UNAVAILABLE:
            return BearerError(503, "temporarily_unavailable", exc.description, realm=realm)
        if exc.code == "insufficient_scope":
            return BearerError(403, "insufficient_scope", exc.description, realm=realm, scope=exc.scope)
        return BearerError(401, "invalid_token", exc.description, realm=realm)


class DpopAuthError(BearerError):
    """An RFC 9449 §7.1 refusal of a DPoP-scheme request; ``nonce`` goes to ``DPoP-Nonce``."""

    def __init__(
        self,
        status_code: int,
        error: str,
        description: str,
        *,
        realm: str,
        challenge_error: bool = True,
        scope: str | None = None,
        nonce: str | None = None,
    ) -> None:
        self.nonce = nonce
        super().__init__(
            status_code, error, description, realm=realm, challenge_error=challenge_error, scope=scope
        )

    def extra_headers(self) -> dict[str, str]:
        """``DPoP-Nonce`` when the refusal hands out a server nonce (RFC 9449 §9)."""
        return {} if self.nonce is None else {"DPoP-Nonce": self.nonce}

    @staticmethod
    def challenge(
        realm: str, *, error: str | None = None, description: str | None = None, scope: str | None = None
    ) -> str:
        return dpop_challenge(realm, error=error, description=description, scope=scope)

    @classmethod
    def from_dpop_refusal(cls, exc: InvalidToken, *, realm: str) -> DpopAuthError:
        """The answer to a refused DPoP request."""
        if exc.reason in _UNAVAILABLE:
            return cls(503, "temporarily_unavailable", exc.description, realm=realm)
        if exc.code == "insufficient_scope":
            return cls(403, "insufficient_scope", exc.description, realm=realm, scope=exc.scope)
        error = exc.code if exc.code in _PROOF_ERRORS else "invalid_token"
        return cls(401, error, exc.description, realm=realm, nonce=exc.nonce)


async def bearer_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Render a :class:`BearerError` as ``{"error", "error_description"}``."""
    if not isinstance(exc, BearerError):  # pragma: no cover - registered for BearerError only
        raise exc
    return JSONResponse(exc.body, status_code=exc.status_code, headers=exc.headers)


def _invalid_token_handler(realm: str = "authsvc") -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    """A handler answering a verifier's :class:`InvalidToken` as ``require()`` would."""
    _check_realm(realm)

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, InvalidToken):  # pragma: no cover - registered for InvalidToken only
            raise exc
        return await bearer_error_handler(request, BearerError.from_invalid_token(exc, realm=realm))

    return handle


def install_error_handler(app: Starlette, *, realm: str = "authsvc") -> None:
    """Make ``app`` answer Bearer and DPoP errors, and any ``InvalidToken`` it lets escape, per RFC.

    ``realm`` names the protection space in challenges built from an escaped
    ``InvalidToken`` (``require()`` takes its own).
    """
    app.add_exception_handler(BearerError, bearer_error_handler)
    app.add_exception_handler(InvalidToken, _invalid_token_handler(realm))


def _check_realm(realm: str) -> None:
    if not QUOTABLE.fullmatch(realm):
        raise ValueError("realm must be printable ASCII without '\"' or '\\'")


def _public_base(public_url: str | None) -> str | None:
    if public_url is None:
        return None
    try:
        parts = urlsplit(public_url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except (ValueError, TypeError, AttributeError):
        raise ValueError("public_url must be an http(s) URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username is not None:
        raise ValueError("public_url must be an http(s) URL with a host and no user")
    if parts.query or parts.fragment or "?" in public_url or "#" in public_url:
        raise ValueError("public_url takes no query or fragment")
    return public_url.rstrip("/")


def _request_url(request: Request, base: str | None) -> str:
    """The URL a proof's ``htu`` must name: the request's, without query (RFC 9449 §4.3)."""
    path = quote(request.scope.get("path") or "/", safe=_PATH_SAFE)
    if base is not None:
        return base + path
    url = request.url
    return f"{url.scheme}://{url.netloc}{path}"


def _no_credentials(realm: str) -> BearerError:
    # RFC 6750 §3.1: a request without credentials gets a challenge with no error code.
    return BearerError(
        401, "invalid_request", "A Bearer access token is required.", realm=realm, challenge_error=False
    )


def _uses_dpop(authorization: Sequence[str]) -> bool:
    return len(authorization) == 1 and authorization[0].strip().partition(" ")[0].lower() == "dpop"


def _dpop_credentials(request: Request, base: str | None, realm: str) -> tuple[str, DpopRequest]:
    """The token and proof of a request with one ``Authorization: DPoP`` header."""
    token = request.headers["authorization"].strip().partition(" ")[2].strip()
    if not token:
        raise DpopAuthError(400, "invalid_request", "The DPoP credential is empty.", realm=realm)
    try:
        proof = proof_header(request.headers.getlist("dpop"))
    except DpopError:
        raise DpopAuthError(400, "invalid_request", "Send one DPoP header.", realm=realm) from None
    if proof is None:
        raise DpopAuthError(401, "invalid_dpop_proof", "A DPoP proof is required.", realm=realm)
    return token, DpopRequest(proof=proof, method=request.method, url=_request_url(request, base))


def bearer_dependency(
    verifier: Verifier,
    scopes: Sequence[str],
    *,
    realm: str = "authsvc",
    public_url: str | None = None,
) -> Callable[..., Awaitable[dict[str, Any]]]:
    """A dependency returning the claims of a valid Bearer or DPoP token holding ``scopes``.

    ``public_url``: ``scheme://host[:port][/prefix]`` as clients reach the app;
    a proof's ``htu`` must then be that plus the request's path.
    """
    _check_realm(realm)
    if not all(is_scope_token(scope) for scope in scopes):
        raise ValueError("scopes must be RFC 6749 scope tokens")
    required = tuple(scopes)
    base = _public_base(public_url)

    async def require_token(
        request: Request,
        response: Response,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_OPENAPI_SCHEME)],
    ) -> dict[str, Any]:
        authorization = request.headers.getlist("authorization")
        dpop: DpopRequest | None = None
        if _uses_dpop(authorization):
            token, dpop = _dpop_credentials(request, base, realm)
        else:
            try:
                token = bearer_token(authorization)
            except BearerProblem as problem:
                if problem.error is None:
                    raise _no_credentials(realm) from None
                raise BearerError(problem.status, problem.error, problem.description, realm=realm) from None
        try:
            claims = await verifier.verify(token, scopes=required, dpop=dpop)
        except InvalidToken as exc:
            raise BearerError.from_invalid_token(exc, realm=realm) from None
        nonces = verifier.dpop_nonces
        if dpop is not None and nonces is not None:
            response.headers["DPoP-Nonce"] = nonces.current()  # RFC 9449 §9: the next one, ahead of time
        return claims

    return require_token
