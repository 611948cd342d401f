"""Response helpers: JSON bodies with the headers OAuth requires."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from authsvc.errors import OAuthError

__all__ = ["NO_STORE", "error_response", "json_response"]

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def json_response(content: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """``content`` as compact UTF-8 JSON, by orjson as the token bodies and the audit line are
    (dictionary keys that are not strings written as strings, as ``json.dumps`` did)."""
    body = content if isinstance(content, bytes) else orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
    return Response(body, status_code=status_code, headers=headers, media_type="application/json")


def error_response(error: OAuthError, *, no_store: bool = True) -> Response:
    headers = {**(NO_STORE if no_store else {}), **error.headers()}
    return json_response(error.body(), error.status_code, headers)
