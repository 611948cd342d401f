"""Hostile and malformed requests to /token: always a 4xx with an RFC error code.

Never a 5xx, never a traceback, always a JSON body with ``error``.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import AppHarness

FORM = "application/x-www-form-urlencoded"
RFC_ERRORS = {
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
}


def assert_oauth_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] == error
    assert "Traceback" not in response.text


def assert_clean_client_error(response: httpx.Response) -> None:
    """Any 4xx with an RFC 6749 code, JSON, no trace."""
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"] in RFC_ERRORS
    assert "Traceback" not in response.text


async def post_raw(harness: AppHarness, body: bytes, content_type: str | None = FORM) -> httpx.Response:
    headers = {} if content_type is None else {"Content-Type": content_type}
    return await harness.client.post("/token", content=body, headers=headers)


@pytest.fixture
async def harness(harness_factory: Callable[..., Any]) -> AppHarness:
    """Ed25519 keys: these tests are about parsing, and Ed25519 keys are quick to make."""
    return await harness_factory(signing_alg="EdDSA")  # type: ignore[no-any-return]


@pytest.fixture
async def alice(harness: AppHarness) -> AppHarness:
    await harness.add_user()
    return harness


# --- content types -----------------------------------------------------------------------
async def test_json_body_is_invalid_request(alice: AppHarness) -> None:
    response = await alice.client.post(
        "/token", json={"grant_type": "password", "username": "alice", "password": "correct horse"}
    )
    assert_oauth_error(response, 400, "invalid_request")


async def test_multipart_body_is_invalid_request(alice: AppHarness) -> None:
    response = await alice.client.post(
        "/token",
        data={"grant_type": "password", "username": "alice", "password": "correct horse"},
        files={"x": ("x.txt", b"x")},
    )
    assert_oauth_error(response, 400, "invalid_request")


async def test_no_content_type_is_invalid_request(alice: AppHarness) -> None:
    response = await post_raw(alice, b"grant_type=password&username=alice&password=correct+horse", None)
    assert_oauth_error(response, 400, "invalid_request")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencodedx", "form", ""])
async def test_other_content_types_are_invalid_request(alice: AppHarness, content_type: str) -> None:
    response = await post_raw(
        alice, b"grant_type=password&username=alice&password=correct+horse", content_type
    )
    assert_oauth_error(response, 400, "invalid_request")


async def test_no_body_is_invalid_request(alice: AppHarness) -> None:
    assert_oauth_error(await post_raw(alice, b""), 400, "invalid_request")
    assert_oauth_error(await alice.client.post("/token"), 400, "invalid_request")


# --- malformed forms --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [b"%%%", b"&&&", b"=", b"==&==", b"grant_type", b"grant_type=", b"\x00\x01\x02", b"a=1;b=2", b"+++"],
)
async def test_malformed_form_bodies(alice: AppHarness, body: bytes) -> None:
    assert_oauth_error(await post_raw(alice, body), 400, "invalid_request")


async def test_too_many_fields_is_invalid_request(alice: AppHarness) -> None:
    body = "&".join(f"x{i}=1" for i in range(500)).encode()
    assert_clean_client_error(await post_raw(alice, body))


async def test_missing_grant_type(alice: AppHarness) -> None:
    response = await alice.client.post("/token", data={"username": "alice", "password": "correct horse"})
    assert_oauth_error(response, 400, "invalid_request")


@pytest.mark.parametrize(
    "grant_type", ["foo", "implicit", "urn:ietf:params:oauth:grant-type:device_code", "PASSWORD", "password "]
)
async def test_unknown_grant_type(alice: AppHarness, grant_type: str) -> None:
    response = await alice.login(grant_type=grant_type)
    assert_oauth_error(response, 400, "unsupported_grant_type")


@pytest.mark.parametrize(
    "body",
    [
        b"grant_type=password&grant_type=password&username=alice&password=correct+horse",
        b"grant_type=password&username=alice&username=alice&password=correct+horse",
        b"grant_type=password&username=alice&password=correct+horse&password=correct+horse",
        b"grant_type=password&username=alice&password=correct+horse&scope=read&scope=write",
        b"grant_type=password&username=alice&password=correct+horse&client_id=cli&client_id=cli",
        b"grant_type=password&username=alice&password=correct+horse&password=",
    ],
)
async def test_repeated_parameters_are_invalid_request(alice: AppHarness, body: bytes) -> None:
    assert_oauth_error(await post_raw(alice, body), 400, "invalid_request")


async def test_repeated_refresh_token_is_invalid_request(alice: AppHarness) -> None:
    token = (await alice.login()).json()["refresh_token"]
    body = f"grant_type=refresh_token&refresh_token={token}&refresh_token={token}".encode()
    assert_oauth_error(await post_raw(alice, body), 400, "invalid_request")
    # the refresh token was not spent by the refused request
    assert (await alice.refresh(token)).status_code == 200


async def test_unknown_parameters_are_ignored(alice: AppHarness) -> None:
    response = await alice.login(foo="bar", response_type="code", state="x")
    assert response.status_code == 200


@pytest.mark.parametrize(
    "data",
    [
        {"grant_type": "password", "password": "correct horse"},
        {"grant_type": "password", "username": "alice"},
        {"grant_type": "password", "username": "", "password": "correct horse"},
        {"grant_type": "password", "username": "alice", "password": ""},
        {"grant_type": "refresh_token"},
        {"grant_type": "refresh_token", "refresh_token": ""},
        {"grant_type": "", "username": "alice", "password": "correct horse"},
    ],
)
async def test_missing_or_empty_required_parameters(alice: AppHarness, data: dict[str, str]) -> None:
    assert_oauth_error(await alice.client.post("/token", data=data), 400, "invalid_request")


async def test_empty_optional_parameters_are_absent(alice: AppHarness) -> None:
    response = await alice.login(scope="", client_id="")
    assert response.status_code == 200
    assert response.json()["scope"] == "read write"


# --- encodings ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        b"grant_type=password&username=\xff\xfe&password=correct+horse",
        b"grant_type=password&username=alice&password=%FF%FE",
        b"grant_type=password&username=%C3%28&password=x",
        b"grant_type=password&username=alice&password=\xc3",
    ],
)
async def test_non_utf8_is_invalid_request(alice: AppHarness, body: bytes) -> None:
    assert_oauth_error(await post_raw(alice, body), 400, "invalid_request")


async def test_percent_encoded_utf8_works(harness: AppHarness) -> None:
    await harness.add_user("zoë", "pässwörd")
    response = await post_raw(harness, b"grant_type=password&username=zo%C3%AB&password=p%C3%A4ssw%C3%B6rd")
    assert response.status_code == 200


async def test_nul_and_control_characters_are_not_a_server_error(alice: AppHarness) -> None:
    for value in ("%00", "alice%00", "%0d%0a", "a" * 200):
        response = await post_raw(alice, f"grant_type=password&username={value}&password=x".encode())
        assert_oauth_error(response, 400, "invalid_grant")


# --- sizes -----------------------------------------------------------------------------------------
async def test_body_over_64_kib_is_413(alice: AppHarness) -> None:
    body = b"grant_type=password&username=alice&password=x&pad=" + b"a" * (64 * 1024)
    response = await post_raw(alice, body)
    assert response.status_code == 413
    assert response.json()["error"] == "invalid_request"


async def test_body_of_exactly_64_kib_is_read(alice: AppHarness) -> None:
    head = b"grant_type=password&username=alice&password=correct+horse&pad="
    body = head + b"a" * (64 * 1024 - len(head))
    assert len(body) == 64 * 1024
    # one field of ~64 KiB: a 4xx for the field, never 413 for the body
    response = await post_raw(alice, body)
    assert response.status_code != 413
    assert response.status_code < 500


async def test_streamed_body_over_64_kib_is_413(alice: AppHarness) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"grant_type=password&username=alice&password=x&pad="
        for _ in range(20):
            yield b"a" * 8192

    response = await alice.client.post("/token", content=chunks(), headers={"Content-Type": FORM})
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json()["error"] == "invalid_request"


async def test_declared_100_mb_is_413(alice: AppHarness) -> None:
    response = await alice.client.post(
        "/token",
        content=b"grant_type=password",
        headers={"Content-Type": FORM, "Content-Length": str(100 * 1024 * 1024)},
    )
    assert response.status_code == 413
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "a.b.c",
        "..",
        "eyJhbGciOiJub25lIn0.e30.",
        "é.é.é",
        "A" * 9000,
        "eyJ" + "A" * 12000 + ".eyJ.sig",
    ],
)
async def test_garbage_refresh_tokens_are_invalid_grant(alice: AppHarness, token: str) -> None:
    assert_oauth_error(await alice.refresh(token), 400, "invalid_grant")


async def test_huge_refresh_token_is_a_clean_4xx(alice: AppHarness) -> None:
    response = await alice.refresh("A" * 40_000)
    assert_clean_client_error(response)
    assert response.json()["error"] in {"invalid_grant", "invalid_request"}


async def test_tampered_refresh_token_is_invalid_grant(alice: AppHarness) -> None:
    token = (await alice.login()).json()["refresh_token"]
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scope"] = "read write admin"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    for forged in (f"{header}.{forged_payload}.{signature}", f"{header}.{payload}.{flipped}"):
        assert_oauth_error(await alice.refresh(forged), 400, "invalid_grant")
    assert (await alice.refresh(token)).status_code == 200


# --- method and URL ------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
async def test_other_methods_are_405(alice: AppHarness, method: str) -> None:
    response = await alice.client.request(method, "/token")
    assert response.status_code == 405
    assert response.json()["error"]


async def test_parameters_in_the_query_string_are_not_read(alice: AppHarness) -> None:
    response = await alice.client.post(
        "/token?grant_type=password&username=alice&password=correct+horse",
        content=b"",
        headers={"Content-Type": FORM},
    )
    assert_oauth_error(response, 400, "invalid_request")


async def test_credentials_in_the_query_string_are_not_read(alice: AppHarness) -> None:
    response = await alice.client.post(
        "/token?username=alice&password=correct+horse", data={"grant_type": "password"}
    )
    assert_oauth_error(response, 400, "invalid_request")


async def test_refresh_token_in_the_query_string_is_not_read(alice: AppHarness) -> None:
    token = (await alice.login()).json()["refresh_token"]
    response = await alice.client.post(f"/token?refresh_token={token}", data={"grant_type": "refresh_token"})
    assert_oauth_error(response, 400, "invalid_request")


# --- fuzzing --------------------------------------------------------------------------------------
_content_types = st.one_of(
    st.just(FORM),
    st.just(FORM + "; charset=utf-8"),
    st.sampled_from(["application/json", "multipart/form-data; boundary=x", "text/plain", ""]),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60),
)
_header_values = st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
_header_names = st.sampled_from(
    [
        "authorization",
        "content-length",
        "x-forwarded-for",
        "accept",
        "accept-charset",
        "content-encoding",
        "transfer-encoding",
        "x-anything",
        "cookie",
        "if-none-match",
    ]
)


def _check(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/json")
        assert "error" in response.json()
        assert "Traceback" not in response.text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.binary(max_size=512),
    content_type=_content_types,
    extra=st.lists(st.tuples(_header_names, _header_values), max_size=3),
)
async def test_arbitrary_bytes_and_headers(
    alice: AppHarness, body: bytes, content_type: str, extra: list[tuple[str, bytes]]
) -> None:
    headers = [("content-type", content_type.encode("latin-1")), *[(n, v) for n, v in extra]]
    request = alice.client.build_request("POST", "/token", content=body)
    for name, value in headers:
        request.headers[name] = value.decode("latin-1")
    _check(await alice.client.send(request))


_form_names = st.sampled_from(
    ["grant_type", "username", "password", "scope", "client_id", "refresh_token", "client_secret", "x"]
)
_form_values = st.one_of(
    st.sampled_from(["password", "refresh_token", "alice", "correct horse", "cli", "read", "read write"]),
    st.text(max_size=40),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=st.lists(st.tuples(_form_names, _form_values), max_size=6))
async def test_arbitrary_form_fields(alice: AppHarness, fields: list[tuple[str, str]]) -> None:
    response = await alice.client.post(
        "/token", content=httpx.QueryParams(fields).__str__().encode(), headers={"Content-Type": FORM}
    )
    _check(response)
    if response.status_code >= 400:
        assert response.json()["error"] in RFC_ERRORS


async def test_an_unexpected_error_is_a_bare_500_and_the_service_goes_on(
    harness: AppHarness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``Guard`` is the last resort (the app leaves Starlette's ``ServerErrorMiddleware`` out): a bug
    that escapes a handler is a JSON ``server_error`` with nothing of the exception in it, logged,
    and the next request is served."""
    secret = await harness.add_service_client("svc")
    grant = harness.services.grants.get("client_credentials")

    async def broken(*_args: Any) -> Any:
        raise RuntimeError("internal detail 8f3a")

    monkeypatch.setattr(type(grant), "handle", broken)
    with caplog.at_level(logging.ERROR, logger="authsvc"):
        answer = await harness.client.post(
            "/token", data={"grant_type": "client_credentials"}, auth=("svc", secret)
        )
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {
        "error": "server_error",
        "error_description": "The server could not complete the request.",
    }
    assert "8f3a" not in answer.text and "Traceback" not in answer.text
    assert "unhandled error on POST /token" in caplog.text
    monkeypatch.undo()
    again = await harness.client.post(
        "/token", data={"grant_type": "client_credentials"}, auth=("svc", secret)
    )
    assert again.status_code == 200, again.text
