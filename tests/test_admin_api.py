"""The admin API through HTTP with real tokens (the ASGI apps of one service): who may call it,
every action, concurrent edits, RFC 7807 errors, and the audit line naming the admin."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.support import ISSUER, AppHarness

ADMIN_SCOPE = "authsvc:admin"


@pytest.fixture
async def admin(harness: AppHarness) -> Any:
    await harness.add_user("root", "root password!", scopes=f"{ADMIN_SCOPE} read")
    await harness.add_user("alice", scopes="read write")
    token = (await harness.login("root", "root password!")).json()["access_token"]
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(harness.app.admin),
        base_url="http://127.0.0.1:9001",
        headers={"Authorization": f"Bearer {token}"},
    )
    yield harness, client
    await client.aclose()


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body  # type: ignore[no-any-return]


async def test_who_may_call_it(admin: Any) -> None:
    harness, client = admin
    anonymous = await client.get("/admin/keys", headers={"Authorization": ""})
    problem(anonymous, 401)
    no_token = httpx.AsyncClient(transport=httpx.ASGITransport(harness.app.admin), base_url="http://a")
    answer = await no_token.get("/admin/users")
    problem(answer, 401)
    assert answer.headers["www-authenticate"].startswith("Bearer")
    alice = (await harness.login("alice")).json()["access_token"]
    problem(await no_token.get("/admin/users", headers={"Authorization": f"Bearer {alice}"}), 403)
    problem(await no_token.get("/admin/users", headers={"Authorization": "Bearer not.a.token"}), 401)
    harness.clock.advance(harness.settings.access_token_ttl + harness.settings.clock_skew + 1)
    problem(await client.get("/admin/users"), 401)  # expired
    await no_token.aclose()


async def test_a_logout_ends_an_admins_access_at_once(admin: Any) -> None:
    harness, client = admin
    assert (await client.get("/admin/users")).status_code == 200
    root = await harness.services.users.by_username("root")
    await harness.services.session_store.revoke_user(root.id, harness.clock.now(), "logout")
    problem(await client.get("/admin/users"), 401)


async def test_users_lifecycle(admin: Any, caplog: pytest.LogCaptureFixture) -> None:
    harness, client = admin
    caplog.set_level(logging.INFO, logger="authsvc.audit")
    added = await client.post(
        "/admin/users",
        json={"username": "Bob", "password": "bob password", "scope": "read", "email": "b@x.example"},
    )
    assert added.status_code == 201, added.text
    assert added.json()["username"] == "bob"
    assert (await harness.login("bob", "bob password")).status_code == 200
    problem(await client.post("/admin/users", json={"username": "bob", "password": "another one"}), 409)
    problem(await client.post("/admin/users", json={"username": "carol", "password": "short"}), 400)
    listed = (await client.get("/admin/users")).json()["users"]
    assert {u["username"] for u in listed} == {"root", "alice", "bob"}
    tokens = (await harness.login("bob", "bob password")).json()
    sessions = (await client.get("/admin/users/bob/sessions")).json()["sessions"]
    assert len(sessions) == 2
    changed = await client.patch(
        "/admin/users/bob", json={"password": "a new password", "scope": "read write"}
    )
    assert changed.status_code == 200 and changed.json()["scopes"] == ["read", "write"]
    assert (await harness.refresh(tokens["refresh_token"])).json()["error"] == "invalid_grant"
    assert (await harness.login("bob", "a new password")).status_code == 200
    disabled = await client.patch("/admin/users/bob", json={"disabled": True})
    assert disabled.json()["disabled"] is True
    assert (await harness.login("bob", "a new password")).status_code == 400
    assert (await client.patch("/admin/users/bob", json={"disabled": False})).json()["disabled"] is False
    assert (await client.delete("/admin/users/bob/sessions")).status_code == 200
    assert (await client.delete("/admin/users/bob")).status_code == 204
    problem(await client.get("/admin/users/bob"), 404)
    root = await harness.services.users.by_username("root")
    lines = [r for r in caplog.records if getattr(r, "event", None) == "admin.action"] or [
        r for r in caplog.records if "admin change" in r.getMessage()
    ]
    assert lines, "every change is an audit event"
    assert any(root.id in str(vars(r)) for r in lines)


async def test_clients_lifecycle_and_secret_overlap(admin: Any) -> None:
    harness, client = admin
    created = await client.post(
        "/admin/clients", json={"client_id": "svc", "grant_types": ["client_credentials"], "scopes": "read"}
    )
    assert created.status_code == 201, created.text
    secret = created.json()["client_secret"]

    async def token(secret_value: str) -> int:
        answer = await harness.client.post(
            "/token", data={"grant_type": "client_credentials"}, auth=("svc", secret_value)
        )
        return answer.status_code

    assert await token(secret) == 200
    rotated = await client.post("/admin/clients/svc/secret", json={"overlap": 60})
    new_secret = rotated.json()["client_secret"]
    assert await token(secret) == 200 and await token(new_secret) == 200
    harness.clock.advance(61)
    assert await token(secret) == 401 and await token(new_secret) == 200
    assert (await client.post("/admin/clients/svc/secret", json={})).status_code == 200
    assert await token(new_secret) == 401  # no overlap: at once
    patched = await client.patch("/admin/clients/svc", json={"scopes": ["read", "write"]})
    assert patched.json()["scopes"] == ["read", "write"]
    problem(await client.patch("/admin/clients/svc", json={"redirect_uris": ["http://evil.example/cb"]}), 400)
    problem(await client.patch("/admin/clients/svc", json={"unknown": 1}), 400)
    problem(await client.post("/admin/clients", json={"client_id": "svc"}), 409)
    assert (await client.delete("/admin/clients/svc")).status_code == 204
    problem(await client.get("/admin/clients/svc"), 404)
    problem(await client.post("/admin/clients", json={"client_id": "svc"}), 409)  # never revived


@pytest.mark.parametrize("client_id", ["team/app", "x/secret", "a/b/remove"])
async def test_a_client_id_holding_a_slash_has_every_route(admin: Any, client_id: str) -> None:
    """Client ids may hold "/" (CONTRACT: printable, no spaces); sent as %2F they reach the client,
    even one whose id ends like a sub-resource."""
    _harness, client = admin
    one = f"/admin/clients/{quote(client_id, safe='')}"
    body = {"client_id": client_id, "grant_types": ["client_credentials"]}
    created = await client.post("/admin/clients", json=body)
    assert created.status_code == 201, created.text
    assert (await client.get(one)).json()["client_id"] == client_id
    patched = await client.patch(one, json={"scopes": ["read"]})
    assert patched.status_code == 200 and patched.json()["scopes"] == ["read"], patched.text
    rotated = await client.post(f"{one}/secret", json={})
    assert rotated.status_code == 200 and rotated.json()["client_id"] == client_id, rotated.text
    assert (await client.delete(one)).status_code == 204
    problem(await client.get(one), 404)


async def test_concurrent_edits_of_one_client_lose_nothing(admin: Any) -> None:
    _harness, client = admin
    await client.post("/admin/clients", json={"client_id": "web", "grant_types": "client_credentials"})
    edits = [
        {"scopes": ["a", "b"]},
        {"audiences": ["api"]},
        {"access_token_ttl": 120},
        {"require_dpop": True},
    ]
    answers = await asyncio.gather(*(client.patch("/admin/clients/web", json=edit) for edit in edits))
    assert all(a.status_code == 200 for a in answers)
    final = (await client.get("/admin/clients/web")).json()
    assert final["scopes"] == ["a", "b"] and final["audiences"] == ["api"]
    assert final["access_token_ttl"] == 120 and final["require_dpop"] is True


async def test_keys_timetable_rotate_and_revoke(admin: Any) -> None:
    _harness, client = admin
    listed = (await client.get("/admin/keys")).json()
    kids = [k["kid"] for k in listed["keys"]]
    assert listed["jwks_max_age"] >= 1 and "next_change" in listed
    signing = [k for k in listed["keys"] if k["state"] == "signing"]
    assert len(signing) == 1
    rotated = await client.post("/admin/keys/rotate", json={"force": True})
    assert rotated.status_code == 200
    revoked = await client.post(f"/admin/keys/{signing[0]['kid']}/revoke")
    assert revoked.status_code == 200, revoked.text
    after = {k["kid"]: k for k in (await client.get("/admin/keys")).json()["keys"]}
    assert after[signing[0]["kid"]]["state"] == "revoked"
    assert set(kids) <= set(after)
    problem(await client.post("/admin/keys/nope/revoke"), 404)


async def test_the_admin_openapi_document_and_unknown_paths(admin: Any) -> None:
    _harness, client = admin
    document = (await client.get("/admin/openapi.json")).json()
    assert "/admin/clients/{client_id}/secret" in document["paths"]
    problem(await client.get("/admin/nothing"), 404)
    assert (await client.get("/metrics")).status_code == 200


async def test_metrics_leave_the_public_port_with_an_admin_listener(harness_factory: Any) -> None:
    harness: AppHarness = await harness_factory(admin_bind="127.0.0.1:0")
    assert (await harness.client.get("/metrics")).status_code == 404
    admin = httpx.AsyncClient(transport=httpx.ASGITransport(harness.app.admin), base_url=ISSUER)
    assert (await admin.get("/metrics")).status_code == 200
    await admin.aclose()


async def test_a_token_of_a_revoked_key_stops_working_within_a_second(admin: Any) -> None:
    """The admin API's verifier keeps the JWKS at most a second: revoking the key that signed an
    admin's token ends that token there (a fresh one, signed by the successor, works)."""
    from tests.support import wait_for_key_poll

    harness, client = admin
    signing = next(k for k in (await client.get("/admin/keys")).json()["keys"] if k["state"] == "signing")
    assert (await client.post(f"/admin/keys/{signing['kid']}/revoke")).status_code == 200
    await wait_for_key_poll(harness.services)
    harness.clock.advance(2)  # past the verifier's one-second cache
    problem(await client.get("/admin/users"), 401)
    fresh = (await harness.login("root", "root password!")).json()["access_token"]
    answer = await client.get("/admin/users", headers={"Authorization": f"Bearer {fresh}"})
    assert answer.status_code == 200, answer.text


async def test_built_in_client_ids_cannot_be_registered(admin: Any, tmp_path: Any) -> None:
    from tests.support import run_cli, server_env

    harness, client = admin
    for built_in in ("cli", "authsvc-console"):
        problem(await client.post("/admin/clients", json={"client_id": built_in}), 409)
    env = server_env(tmp_path)
    env["AUTHSVC_DATABASE_URL"] = harness.settings.database_url
    refused = await asyncio.to_thread(run_cli, "clients", "add", "authsvc-console", "--public", env=env)
    assert refused.returncode == 1 and "built-in" in refused.stderr, refused.stderr
