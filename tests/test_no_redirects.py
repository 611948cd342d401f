"""API endpoints and unknown paths never redirect (CONTRACT "Trust rules").

Finding 12 of issue #13: ``POST /token/`` answered ``307`` to
``http://<Host header>/token`` (Starlette's ``redirect_slashes``), and clients
re-sent the password there — to whatever host the request named. A trailing
slash, or any path that is not a route, is a 404 with the same JSON body as
every other 404; no answer carries a ``Location`` header. The live test
covers every route as served, the hot ones included.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authsvc.api.endpoints import PATHS
from tests.support import AppHarness, LiveServer

#: Every path the service answers, from the one routing table (a new endpoint is covered at once).
API_PATHS = tuple(sorted(PATHS))
NOT_ROUTES = (
    *(path + "/" for path in API_PATHS),
    *(path + "//" for path in API_PATHS),
    "/.well-known/",
    "/.well-known",
    "/users/",
    "/users",
    "/Token",
    "/token/x",
    "/nowhere",
    "/nowhere/",
    "/docs",
    "/docs/",
)
HOSTILE_HOST = "evil.example"
PASSWORD_FORM = {"grant_type": "password", "username": "alice", "password": "correct horse"}


def _not_found_body(response: httpx.Response) -> None:
    assert response.status_code == 404, (response.request.method, response.request.url, response.status_code)
    assert "location" not in response.headers
    assert response.json() == {"error": "not_found", "error_description": "No such resource or method."}


def test_trailing_slashes_and_unknown_paths_are_404_never_a_redirect(
    live_server_factory: Callable[..., LiveServer],
) -> None:
    server = live_server_factory()
    headers = {"Host": HOSTILE_HOST, "Authorization": "Basic Y2xpOg=="}
    with httpx.Client(base_url=server.url, follow_redirects=False, timeout=10) as client:
        for path in NOT_ROUTES:
            for method in ("GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS"):
                data = PASSWORD_FORM if method == "POST" else None
                response = client.request(method, path, headers=headers, data=data)
                assert not response.is_redirect, (method, path, response.status_code)
                assert "location" not in response.headers, (method, path)
                if method != "HEAD":
                    _not_found_body(response)
                else:
                    assert response.status_code == 404, (method, path, response.status_code)
            # The query string is no way around it either.
            response = client.get(path + "?next=http://evil.example/", headers=headers)
            _not_found_body(response)


def test_api_paths_answer_in_place_under_a_hostile_host(
    live_server_factory: Callable[..., LiveServer],
) -> None:
    server = live_server_factory()
    with httpx.Client(base_url=server.url, follow_redirects=False, timeout=10) as client:
        for path in API_PATHS:
            for method in ("GET", "POST", "HEAD"):
                response = client.request(
                    method,
                    path,
                    headers={"Host": HOSTILE_HOST},
                    data=PASSWORD_FORM if method == "POST" else None,
                )
                assert not 300 <= response.status_code < 400, (method, path, response.status_code)
                assert "location" not in response.headers, (method, path)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.tuples(
        st.sampled_from([*API_PATHS, "", "/.well-known", "/users"]),
        st.one_of(
            st.sampled_from(["/", "//", "/.", "/..", "%2F", "/?", "/x"]),
            st.text(alphabet=st.sampled_from("/abcdefghijklmnopqrstuvwxyz.-_%~ABC0129"), max_size=30),
        ),
    ).map(lambda parts: "/" + (parts[0] + parts[1]).lstrip("/")),
    method=st.sampled_from(["GET", "POST", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"]),
)
async def test_no_path_redirects(harness: AppHarness, path: str, method: str) -> None:
    response = await harness.client.request(method, path, headers={"Host": HOSTILE_HOST})
    assert not 300 <= response.status_code < 400, (method, path, response.status_code)
    assert "location" not in response.headers
    assert response.status_code < 500, (method, path, response.status_code)
