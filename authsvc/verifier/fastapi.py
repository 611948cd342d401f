"""FastAPI glue: a Bearer-token dependency with RFC 6750 errors.

Imported lazily by :meth:`Verifier.require` because FastAPI is not part of the
base install. The token is read from the ``Authorization`` header only, never
from the query string or a form (RFC 6750 §2.1; RFC 9700 §4.3.2). Challenges:

- no (Bearer) credentials → 401 ``WWW-Authenticate: Bearer realm="…"``;
- a refused token → 401 ``…, error="invalid_token", error_description="…"``;
- a valid token without the scopes → 403 ``…, error="insufficient_scope", …, scope="…"``;
- two ``Authorization`` headers or an empty Bearer credential → 400 ``invalid_request``;
- no usable JWKS (the issuer is unreachable and the cache is gone) → 503
  ``temporarily_unavailable``: the token may be fine, so clients must not drop it.

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

from fastapi import HTTPException, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from authsvc.rfc6750 import QUOTABLE, BearerProblem, bearer_token, challenge
from authsvc.scopes import is_scope_token
from authsvc.verifier.errors import InvalidToken

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from authsvc.verifier.verifier import Verifier

__all__ = ["BearerError", "bearer_dependency", "bearer_error_handler", "install_error_handler"]

_RETRY_AFTER: Final = "5"
# Only for the OpenAPI security scheme; the dependency parses the header itself.
_OPENAPI_SCHEME: Final = HTTPBearer(auto_error=False, bearerFormat="JWT")


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
            value = challenge(realm, error=error, description=description, scope=scope)
            headers = {"WWW-Authenticate": value if challenge_error else challenge(realm, scope=scope)}
        self.error = error
        self.description = description
        super().__init__(status_code, detail=self.body, headers=headers)

    @property
    def body(self) -> dict[str, str]:
        """The RFC 6749 §5.2-style JSON error object."""
        return {"error": self.error, "error_description": self.description}

    @classmethod
    def from_invalid_token(cls, exc: InvalidToken, *, realm: str) -> BearerError:
        """Map a verifier refusal to its HTTP form."""
        if exc.reason == "jwks_unavailable":
            return cls(503, "temporarily_unavailable", exc.description, realm=realm)
        if exc.code == "insufficient_scope":
            return cls(403, "insufficient_scope", exc.description, realm=realm, scope=exc.scope)
        return cls(401, "invalid_token", exc.description, realm=realm)


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
    """Make ``app`` answer Bearer errors, and any ``InvalidToken`` it lets escape, per RFC 6750.

    ``realm`` names the protection space in challenges built from an escaped
    ``InvalidToken`` (``require()`` takes its own).
    """
    app.add_exception_handler(BearerError, bearer_error_handler)
    app.add_exception_handler(InvalidToken, _invalid_token_handler(realm))


def _check_realm(realm: str) -> None:
    if not QUOTABLE.fullmatch(realm):
        raise ValueError("realm must be printable ASCII without '\"' or '\\'")


def _no_credentials(realm: str) -> BearerError:
    # RFC 6750 §3.1: a request without credentials gets a challenge with no error code.
    return BearerError(
        401, "invalid_request", "A Bearer access token is required.", realm=realm, challenge_error=False
    )


def bearer_dependency(
    verifier: Verifier, scopes: Sequence[str], *, realm: str = "authsvc"
) -> Callable[..., Awaitable[dict[str, Any]]]:
    """A dependency returning the claims of a valid Bearer token holding ``scopes``."""
    _check_realm(realm)
    if not all(is_scope_token(scope) for scope in scopes):
        raise ValueError("scopes must be RFC 6749 scope tokens")
    required = tuple(scopes)

    async def require_bearer(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_OPENAPI_SCHEME)],
    ) -> dict[str, Any]:
        try:
            token = bearer_token(request.headers.getlist("authorization"))
        except BearerProblem as problem:
            if problem.error is None:
                raise _no_credentials(realm) from None
            raise BearerError(problem.status, problem.error, problem.description, realm=realm) from None
        try:
            return await verifier.verify(token, scopes=required)
        except InvalidToken as exc:
            raise BearerError.from_invalid_token(exc, realm=realm) from None

    return require_bearer
