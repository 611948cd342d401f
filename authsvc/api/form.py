"""Reading OAuth form bodies the way RFC 6749 wants them.

Parameters come only from an ``application/x-www-form-urlencoded`` body:
unknown ones are ignored, empty ones are absent, repeated ones are
``invalid_request``. The body is capped at 64 KiB before it is read whole.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request

from authsvc.errors import InvalidRequest, RequestTooLarge

__all__ = ["MAX_BODY", "MAX_FIELD", "read_form"]

MAX_BODY = 64 * 1024
MAX_FIELD = 16 * 1024
MAX_FIELDS = 64


async def read_form(request: Request) -> dict[str, str]:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() != "application/x-www-form-urlencoded":
        raise InvalidRequest("The request body must be application/x-www-form-urlencoded.")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
        raise RequestTooLarge() if declared.isdigit() else InvalidRequest()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise RequestTooLarge()
        chunks.append(chunk)
    try:
        text = b"".join(chunks).decode("utf-8")
        pairs = parse_qsl(
            text, keep_blank_values=True, strict_parsing=False, errors="strict", max_num_fields=MAX_FIELDS
        )
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("The request body is not valid UTF-8 form data.") from None
    form: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in pairs:
        if name in seen:
            raise InvalidRequest(f"The {_safe(name)} parameter is repeated.")
        seen.add(name)
        if len(value) > MAX_FIELD:
            raise InvalidRequest(f"The {_safe(name)} parameter is too long.")
        if value:
            form[name] = value
    return form


_KNOWN = {
    "grant_type",
    "username",
    "password",
    "scope",
    "client_id",
    "client_secret",
    "refresh_token",
    "token",
    "token_type_hint",
    "client_assertion",
    "client_assertion_type",
}


def _safe(name: str) -> str:
    """Name a parameter in an error only if it is one we know (never echo input)."""
    return name if name in _KNOWN else "a"
