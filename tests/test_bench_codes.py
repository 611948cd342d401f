"""The bench's authorization_code row, its parts that need no server: reading the hosted pages' forms,
PKCE pairs, the token request of a public client, posting each code's body once (wrk's Lua script
and the httpx generator), and how many codes a timed run is handed.
"""

from __future__ import annotations

import base64
import hashlib
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast
from urllib.parse import parse_qs

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from benchkit.browser import REDIRECT_URI, code_body, parse_forms, pkce_pair
from benchkit.load import HttpxGenerator, Load, lua_script
from benchkit.phases.authorization_code import codes_needed

LOGIN_PAGE = """<!doctype html><html><body>
<form method="post" action="/authorize">
  <input type="hidden" name="interaction" value="i_abc">
  <input type="hidden" name="csrf_token" value="t&amp;1">
  <input name="username" autocomplete="username">
  <input name="password" type="password" autocomplete="current-password">
  <button type="submit">Sign in</button>
</form>
<form method="post" action="/authorize"><button name="consent" value="allow">Allow</button>
<button name="consent" value="deny">Deny</button><input type="hidden" name="csrf_token" value="c"></form>
</body></html>"""


def test_forms_give_their_action_hidden_inputs_and_buttons() -> None:
    login, consent = parse_forms(LOGIN_PAGE)
    assert (login.action, login.method) == ("/authorize", "post")
    assert login.fields == {"interaction": "i_abc", "csrf_token": "t&1"}
    assert login.inputs["password"] == "password"
    assert login.inputs["username"] == "text"
    assert ("consent", "allow") in consent.buttons
    assert ("consent", "deny") in consent.buttons
    assert consent.fields == {"csrf_token": "c"}


def test_pkce_pair_is_s256_of_a_fresh_verifier() -> None:
    verifier, challenge = pkce_pair()
    assert 43 <= len(verifier) <= 128
    digest = hashlib.sha256(verifier.encode()).digest()
    assert challenge == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert pkce_pair()[0] != verifier


def test_code_body_is_a_public_clients_token_request() -> None:
    body = parse_qs(code_body("c+/=", "v_1", "spa client"), strict_parsing=True)
    assert body == {
        "grant_type": ["authorization_code"],
        "code": ["c+/="],
        "redirect_uri": [REDIRECT_URI],
        "code_verifier": ["v_1"],
        "client_id": ["spa client"],
    }


def test_lua_script_posts_each_body_once_and_queues_nothing(tmp_path: Path) -> None:
    queue = tmp_path / "q.tokens"
    once = lua_script(Load("http://x/token", method="POST", once_bodies=["a=1", "a=2"]), queue, None)
    assert "local prefix = [====[]====]" in once
    assert "response = function" not in once  # nothing read from the answers
    chained = lua_script(Load("http://x/token", method="POST", chain_tokens=["t"]), queue, None)
    assert "grant_type=refresh_token&refresh_token=" in chained
    assert "queue[tail] = t" in chained
    with pytest.raises(ValueError, match="not both"):
        Load("http://x", chain_tokens=["t"], once_bodies=["b"])


class _Recorder(BaseHTTPRequestHandler):
    bodies: list[str]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self.server.bodies.append(body)  # type: ignore[attr-defined]
        status = 200 if body.startswith("code=") else 400
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.bodies = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_httpx_generator_posts_each_body_once(recorder: ThreadingHTTPServer) -> None:
    url = f"http://127.0.0.1:{recorder.server_address[1]}/token"
    bodies = [f"code={i}" for i in range(40)]
    result = HttpxGenerator(4).run(Load(url, method="POST", once_bodies=bodies, max_requests=40), 10)
    seen = recorder.bodies  # type: ignore[attr-defined]
    # Workers in flight when the count is reached still post: those find the queue empty.
    assert sorted(body for body in seen if body != "exhausted") == sorted(bodies)
    assert result.requests == len(seen)
    assert result.errors == seen.count("exhausted") == len(seen) - 40


def test_httpx_generator_counts_running_out_as_errors(recorder: ThreadingHTTPServer) -> None:
    url = f"http://127.0.0.1:{recorder.server_address[1]}/token"
    result = HttpxGenerator(2).run(Load(url, method="POST", once_bodies=["code=1"], max_requests=5), 10)
    seen = recorder.bodies  # type: ignore[attr-defined]
    assert seen.count("code=1") == 1
    assert result.requests == len(seen) >= 5
    assert result.errors == seen.count("exhausted") == len(seen) - 1


def test_codes_needed_exceed_what_the_run_can_redeem() -> None:
    def bench(generator: str, duration: float) -> Any:
        return cast(
            Any,
            SimpleNamespace(
                generator=SimpleNamespace(name=generator),
                profile=SimpleNamespace(duration=duration, connections=32),
            ),
        )

    # wrk runs whole seconds: 0.3 s is 1 s; 1,000/s x 1 s x 1.2 + 2 per connection.
    assert codes_needed(bench("wrk", 0.3), 1000.0) == 1200 + 64
    assert codes_needed(bench("httpx", 0.3), 1000.0) == 360 + 64
    assert codes_needed(bench("wrk", 3), None) > 3 * 3000
