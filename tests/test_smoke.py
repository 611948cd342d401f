from tests.conftest import AppHarness


async def test_login_me_refresh(harness: AppHarness) -> None:
    await harness.add_user()
    tokens = (await harness.login()).json()
    assert (await harness.me(tokens["access_token"])).json()["username"] == "alice"
    rotated = await harness.refresh(tokens["refresh_token"])
    assert rotated.status_code == 200
    assert (await harness.refresh(tokens["refresh_token"])).json()["error"] == "invalid_grant"


def test_live(live_server) -> None:  # type: ignore[no-untyped-def]
    result = live_server.cli("users", "add", "bob", "--password-stdin", input="pw\n")
    assert result.returncode == 0, result.stderr
    import httpx

    r = httpx.post(live_server.url + "/token", data={"grant_type": "password", "username": "bob", "password": "pw"})
    assert r.status_code == 200


async def test_db_harness(db_harness: AppHarness) -> None:
    await db_harness.add_user()
    tokens = (await db_harness.login()).json()
    assert (await db_harness.me(tokens["access_token"])).status_code == 200
