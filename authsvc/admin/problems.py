"""RFC 7807 problem details: the admin API's one error shape."""

from __future__ import annotations

import json
from http import HTTPStatus

from starlette.responses import Response

__all__ = ["PROBLEM_TYPE", "Problem", "problem_response"]

PROBLEM_TYPE = "application/problem+json"


class Problem(Exception):
    """An admin API error: ``status`` and a fixed ``detail`` (never echoing input)."""

    def __init__(self, status: int, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


def problem_response(problem: Problem) -> Response:
    body = {
        "type": "about:blank",
        "title": HTTPStatus(problem.status).phrase,
        "status": problem.status,
        "detail": problem.detail,
    }
    headers = {"Cache-Control": "no-store", **problem.headers}
    return Response(json.dumps(body), status_code=problem.status, media_type=PROBLEM_TYPE, headers=headers)
