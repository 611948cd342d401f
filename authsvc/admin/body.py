"""Reading the admin API's JSON bodies: one object, known members of the expected types."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from starlette.requests import Request

from authsvc.admin.problems import Problem

__all__ = ["MAX_BODY", "json_body", "optional", "string_list"]

MAX_BODY = 64 * 1024


async def json_body(request: Request, allowed: Iterable[str]) -> dict[str, Any]:
    """The body's members (an empty body is ``{}``); unknown members are a 400."""
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise Problem(413, "The body is too large.")
    if not raw.strip():
        return {}
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise Problem(415, "The body must be application/json.")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise Problem(400, "The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise Problem(400, "The body must be a JSON object.")
    unknown = set(body) - set(allowed)
    if unknown:
        raise Problem(400, "The body has members this operation does not take.")
    return body


def optional(body: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    """``body[name]`` if present (checked to be ``kind``; bools are not ints), else None."""
    if name not in body or body[name] is None:
        return None
    value = body[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise Problem(400, f"{name} has the wrong type.")
    if not isinstance(value, kinds):
        raise Problem(400, f"{name} has the wrong type.")
    return value


def string_list(body: dict[str, Any], name: str) -> list[str] | None:
    """A list of strings, or a space-separated string of them."""
    value = optional(body, name, (list, str))
    if value is None:
        return None
    items = value.split() if isinstance(value, str) else value
    if not all(isinstance(item, str) and item and len(item) <= 2000 for item in items) or len(items) > 100:
        raise Problem(400, f"{name} must be a list of strings.")
    return list(items)
