"""Request size limits: body (declared, streamed, chunked), headers, and form fields.

Against a real ``authsvc serve`` over raw sockets, because what matters is
what the server does with bytes it has not read yet: a body declared or sent
over 64 KiB is answered 413 at once, without reading it; oversized headers
get 431 (or 400) or a closed connection. Form field limits are checked on the
ASGI app. (tests/test_live_pyjwt.py has the basic declared-100-MB and 200 kB
header cases; these extend them.)
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from authsvc.api.form import MAX_BODY, MAX_FIELD, MAX_FIELDS
from tests.support import AppHarness, LiveServer, start_server, stop_server

FORM = b"application/x-www-form-urlencoded"
QUICK = 3.0  # seconds: an answer that did not wait for the body


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("limits"), signing_alg="EdDSA")
    try:
        yield live
    finally:
        stop_server(live)


def connect(server: LiveServer, timeout: float = 10) -> socket.socket:
    parts = urlsplit(server.url)
    return socket.create_connection((parts.hostname, parts.port), timeout=timeout)


def read_reply(sock: socket.socket, timeout: float = 10) -> bytes:
    """Everything until the server closes, or the head and a complete Content-Length body."""
    sock.settimeout(timeout)
    data = b""
    with contextlib.suppress(ConnectionResetError, TimeoutError, BrokenPipeError):
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                length = _content_length(head)
                if length is not None and len(body) >= length:
                    break
    return data


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return None


def status_of(reply: bytes) -> int:
    assert reply.startswith(b"HTTP/1.1 "), f"expected an HTTP response, got {reply[:120]!r}"
    return int(reply[9:12])


def body_of(reply: bytes) -> dict[str, object]:
    return json.loads(reply.partition(b"\r\n\r\n")[2])  # type: ignore[no-any-return]


def closed_by_server(sock: socket.socket, timeout: float = QUICK) -> bool:
    """True if the server closes the connection (EOF or reset) within ``timeout``."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return True


def request_head(method: str, path: str, *headers: bytes) -> bytes:
    return b"\r\n".join([f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", *headers]) + b"\r\n\r\n"


# --- declared length --------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/token", "/revoke", "/introspect", "/users/me"])
def test_declared_100_mb_is_413_at_once_and_the_connection_closed(server: LiveServer, path: str) -> None:
    method = "GET" if path == "/users/me" else "POST"
    with connect(server) as sock:
        started = time.monotonic()
        sock.sendall(
            request_head(method, path, b"Content-Type: " + FORM, b"Content-Length: 100000000")
            + b"grant_type="
        )
        reply = read_reply(sock)
        elapsed = time.monotonic() - started
        assert status_of(reply) == 413, f"expected 413 for a declared 100 MB body, got {reply[:200]!r}"
        assert body_of(reply)["error"] == "invalid_request"
        assert elapsed < QUICK, f"expected the answer at once, not after {elapsed:.1f} s"
        assert b"connection: close" in reply.lower(), "expected the server to close, not to drain 100 MB"
        assert closed_by_server(sock), "expected the connection closed without reading the body"


def test_a_100_mb_upload_is_answered_before_it_is_sent(server: LiveServer) -> None:
    """The client keeps sending; the 413 arrives while at most a few socket buffers have gone."""
    total = 100 * 1024 * 1024
    sent = 0
    stop = threading.Event()

    with connect(server) as sock:
        sock.sendall(
            request_head("POST", "/token", b"Content-Type: " + FORM, f"Content-Length: {total}".encode())
        )

        def upload() -> None:
            nonlocal sent
            chunk = b"a" * 65536
            with contextlib.suppress(OSError):
                while sent < total and not stop.is_set():
                    sock.sendall(chunk)
                    sent += len(chunk)

        uploader = threading.Thread(target=upload, daemon=True)
        started = time.monotonic()
        uploader.start()
        ready, _, _ = select.select([sock], [], [], QUICK * 2)
        assert ready, "expected an answer while the upload was still going"
        reply = sock.recv(65536)
        elapsed = time.monotonic() - started
        stop.set()
        assert status_of(reply) == 413, f"expected 413, got {reply[:200]!r}"
        assert elapsed < QUICK * 2, f"expected the answer at once, not after {elapsed:.1f} s"
        assert sent < total // 4, f"expected the server not to read the body: {sent} bytes went out first"
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    uploader.join(timeout=5)


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        (str(MAX_BODY + 1).encode(), {413}),
        (b"99999999999999999999999999", {413, 400}),
        (b"-1", {400, 413}),
        (b"1e9", {400, 413}),
        (b"0x100000", {400, 413}),
    ],
    ids=["64KiB-plus-1", "huge-number", "negative", "exponent", "hex"],
)
def test_odd_declared_lengths_are_refused(server: LiveServer, declared: bytes, expected: set[int]) -> None:
    with connect(server) as sock:
        sock.sendall(request_head("POST", "/token", b"Content-Type: " + FORM, b"Content-Length: " + declared))
        reply = read_reply(sock)
    assert reply == b"" or status_of(reply) in expected, f"expected one of {expected}, got {reply[:200]!r}"
    assert b"Traceback" not in reply


def test_exactly_64_kib_is_read(server: LiveServer) -> None:
    head = b"grant_type=password&username=nobody&password=x&pad="
    body = head + b"a" * (MAX_BODY - len(head))
    with connect(server) as sock:
        sock.sendall(
            request_head("POST", "/token", b"Content-Type: " + FORM, f"Content-Length: {len(body)}".encode())
            + body
        )
        reply = read_reply(sock)
    # A 4xx for the one long field, never 413 for the body.
    assert status_of(reply) == 400, (
        f"expected the 64 KiB body read and refused as a form, got {reply[:200]!r}"
    )


# --- chunked -------------------------------------------------------------------------------------------
def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def test_chunked_body_over_64_kib_is_413(server: LiveServer) -> None:
    body = b"grant_type=password&username=a&password=b&pad=" + b"a" * (MAX_BODY + 1024)
    with connect(server) as sock:
        sock.sendall(request_head("POST", "/token", b"Content-Type: " + FORM, b"Transfer-Encoding: chunked"))
        for start in range(0, len(body), 8192):
            sock.sendall(_chunk(body[start : start + 8192]))
        sock.sendall(b"0\r\n\r\n")
        reply = read_reply(sock)
    assert status_of(reply) == 413, f"expected 413 for a chunked body over 64 KiB, got {reply[:200]!r}"
    assert body_of(reply)["error"] == "invalid_request"


def test_endless_chunked_body_is_cut_off_at_the_limit(server: LiveServer) -> None:
    """No terminating chunk ever comes: the server answers once 64 KiB have arrived."""
    with connect(server) as sock:
        sock.sendall(request_head("POST", "/token", b"Content-Type: " + FORM, b"Transfer-Encoding: chunked"))
        started = time.monotonic()
        sent = 0
        reply = b""
        sock.setblocking(False)
        while time.monotonic() - started < QUICK * 2 and not reply:
            with contextlib.suppress(BlockingIOError):
                sent += sock.send(_chunk(b"a" * 4096))
            readable, _, _ = select.select([sock], [], [], 0.01)
            if readable:
                reply = sock.recv(65536)
        assert reply, f"expected an answer before the (endless) body ended; sent {sent} bytes"
        assert status_of(reply) == 413, f"expected 413, got {reply[:200]!r}"
        assert sent < 16 * MAX_BODY, f"expected the cut near 64 KiB, {sent} bytes went out first"


# --- headers ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [
        [b"Authorization: Bearer " + b"a" * 100_000],
        [f"X-Filler-{i}: {'b' * 100}".encode() for i in range(2_000)],
        [b"Cookie: " + b"c=" + b"d" * 70_000],
    ],
    ids=["huge-authorization", "two-thousand-headers", "huge-cookie"],
)
def test_oversized_headers_are_431_400_or_closed(server: LiveServer, headers: list[bytes]) -> None:
    with connect(server) as sock:
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            sock.sendall(request_head("GET", "/users/me", *headers))
        reply = read_reply(sock)
    assert reply == b"" or status_of(reply) in (431, 400), f"expected 431/400/closed, got {reply[:200]!r}"
    assert b"Traceback" not in reply


def test_the_server_still_serves_after_the_abuse(server: LiveServer) -> None:
    assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
    metrics = httpx.get(server.url + "/metrics", timeout=5).text
    assert 'status="500"' not in metrics, "expected no request to have ended in a 500"


async def test_headers_over_the_limit_are_431_on_the_app_itself(harness: AppHarness) -> None:
    """Deterministic, whatever the server's parser let through."""
    from authsvc.api.guard import MAX_HEADER_BYTES

    big = {"Authorization": "Bearer " + "a" * MAX_HEADER_BYTES}
    for method, path in (("GET", "/users/me"), ("POST", "/token"), ("GET", "/healthz")):
        response = await harness.client.request(method, path, headers=big)
        assert response.status_code == 431, f"expected 431 from {path}, got {response.status_code}"
        assert response.json()["error"] == "invalid_request"
        assert response.headers["connection"] == "close"
    many = {f"X-Filler-{i}": "b" * 100 for i in range(MAX_HEADER_BYTES // 100)}
    assert (await harness.client.get("/users/me", headers=many)).status_code == 431
    fine = {"Authorization": "Bearer " + "a" * 8192}
    assert (await harness.client.get("/users/me", headers=fine)).status_code == 401, "expected 8 KiB read"


# --- form fields (ASGI) -----------------------------------------------------------------------------------
async def test_a_field_over_the_limit_is_invalid_request(harness: AppHarness) -> None:
    await harness.add_user()
    for name in ("password", "username", "refresh_token", "scope", "client_id", "unknown_field"):
        data = {
            "grant_type": "password",
            "username": "alice",
            "password": "correct horse",
            name: "x" * (MAX_FIELD + 1),
        }
        response = await harness.client.post("/token", data=data)
        assert response.status_code == 400, f"expected 400 for a {name} over {MAX_FIELD}, got {response.text}"
        assert response.json()["error"] == "invalid_request", f"expected invalid_request for {name}"


async def test_a_field_at_the_limit_is_read(harness: AppHarness) -> None:
    await harness.add_user()
    response = await harness.login(password="x" * MAX_FIELD)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant", "expected a 16 KiB password checked (and wrong)"


async def test_a_field_at_the_limit_at_revoke_and_introspect(harness: AppHarness) -> None:
    for path in ("/revoke", "/introspect"):
        response = await harness.client.post(path, data={"token": "x" * (MAX_FIELD + 1)})
        assert response.status_code in (400, 401), f"expected a 4xx from {path}, got {response.status_code}"
        if response.status_code == 400:
            assert response.json()["error"] == "invalid_request"


async def test_too_many_fields_is_invalid_request(harness: AppHarness) -> None:
    fields = "&".join(f"f{i}=1" for i in range(MAX_FIELDS + 1))
    response = await harness.client.post(
        "/token", content=f"grant_type=password&{fields}".encode(), headers={"Content-Type": FORM.decode()}
    )
    assert response.status_code == 400, f"expected 400 for {MAX_FIELDS + 1}+ fields, got {response.text}"
    assert response.json()["error"] == "invalid_request"


async def test_many_fields_under_the_limit_are_fine(harness: AppHarness) -> None:
    await harness.add_user()
    extra = {f"f{i}": "1" for i in range(MAX_FIELDS - 4)}
    response = await harness.login(**extra)
    assert response.status_code == 200, (
        f"expected unknown fields under the limit ignored, got {response.text}"
    )
