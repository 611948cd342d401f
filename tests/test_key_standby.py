"""The standby key (``AUTHSVC_KEY_STANDBY``, default true; issue #13, finding 19).

A standby is published with no signing slot, so an emergency revocation or a
rotation switches to a key every JWKS cache already holds. Pure timetable and
plan tests first, then the real CLI, ``rotate_keys.py`` and a live server.
The no-standby timetable is pinned by the older tests, which run with
``AUTHSVC_KEY_STANDBY=false``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt
from hypothesis import given
from hypothesis import strategies as st

from authsvc.keys.model import STANDBY_SIGN_FROM, KeyRecord, KeySetDoc
from authsvc.keys.plan import PROPAGATION, plan_rotation
from authsvc.keys.timetable import KeyState, Lifetimes, Timetable
from tests.support import LiveServer
from tests.test_rotation_cli import CLI_ARGS, SCRIPT_ARGS, keys_dir, keys_env, run_parallel, run_script, seed

T = 1_800_000_000.0
L = Lifetimes(access_ttl=30, refresh_ttl=100, skew=5, rotation_period=1000, prepublish=50, jwks_max_age=20)
LEAD = L.prepublish + PROPAGATION


def key(
    kid: str, sign_from: float, *, created: float | None = None, alg: str = "EdDSA", **extra: object
) -> KeyRecord:
    created_at = sign_from - L.prepublish if created is None else created
    return KeyRecord(kid, alg, {"kid": kid}, created_at=created_at, sign_from=sign_from, **extra)  # type: ignore[arg-type]


def spare(kid: str = "s", created: float = T, alg: str = "EdDSA") -> KeyRecord:
    return key(kid, STANDBY_SIGN_FROM, created=created, alg=alg, standby=True)


def plan(
    keys: tuple[KeyRecord, ...], now: float, *, force: bool = False, alg: str = "EdDSA", standby: bool = True
):  # type: ignore[no-untyped-def]
    return plan_rotation(KeySetDoc(keys=keys), L, now, alg, force=force, standby=standby)


# --- the timetable --------------------------------------------------------------------------------
def test_standby_is_published_without_a_slot_and_never_leaves_on_a_schedule() -> None:
    first, s = key("a", T, created=T), spare()
    table = Timetable((first, s), L)
    assert table.state(s, T) is KeyState.STANDBY
    assert "s" not in table.slots
    assert [k.kid for k in table.published(T)] == ["a", "s"]
    assert table.signing(T) == first
    assert table.sign_until("a") == float("inf")  # the standby is no successor
    assert table.unpublish_at("s") == table.forget_at("s") == float("inf")
    assert table.next_jwks_change(T) == float("inf")
    assert table.jwks_max_age(T) == L.jwks_max_age
    assert table.needs_private(s, T)
    assert table.standby(T) == s
    assert table.last() == first and table.successor("a") is None
    assert table.rotation_overdue(T + 1000)  # a standby does not hide an overdue rotation


def test_revoked_standby_is_revoked_and_unpublished() -> None:
    s = spare().with_changes(revoked_at=T + 5)
    table = Timetable((key("a", T, created=T), s), L)
    assert table.state(s, T + 5) is KeyState.REVOKED
    assert table.standby(T + 5) is None
    assert [k.kid for k in table.published(T + 5)] == ["a"]


@given(
    created=st.floats(T - 10_000, T, allow_nan=False),
    now=st.floats(T, T + 100_000, allow_nan=False),
    successor_at=st.one_of(st.none(), st.floats(T + 1, T + 50_000, allow_nan=False)),
)
def test_a_standby_changes_nothing_else_in_the_timetable(
    created: float, now: float, successor_at: float | None
) -> None:
    """With or without the standby: the same signing key, slots, max-age and other states."""
    keys: tuple[KeyRecord, ...] = (key("a", T, created=T),)
    if successor_at is not None:
        keys += (key("b", successor_at, created=T),)
    without, with_ = Timetable(keys, L), Timetable((*keys, spare(created=created)), L)
    assert with_.signing(now) == without.signing(now)
    assert with_.slots == without.slots
    assert with_.jwks_max_age(now) == without.jwks_max_age(now)
    assert with_.next_change(now) == without.next_change(now)
    assert [k.kid for k in with_.published(now)] == [k.kid for k in without.published(now)] + ["s"]


def test_manifest_stays_readable_by_the_previous_code() -> None:
    """Version 1, float sign_from: a reader that ignores ``standby`` sees a successor that never signs."""
    doc = KeySetDoc(keys=(key("a", T, created=T), spare()), generation=3)
    data = json.loads(json.dumps(doc.to_json()))
    assert data["version"] == 1
    assert all(isinstance(k["sign_from"], float) for k in data["keys"])
    assert KeySetDoc.from_json(data) == doc
    # What the previous code builds: the same records without the flag it does not know.
    old = Timetable(tuple(KeyRecord.from_json({**k, "standby": False}) for k in data["keys"]), L)
    for now in (T, T + 10**6, T + 10**8):
        assert old.signing(now).kid == "a"  # type: ignore[union-attr]
        assert [k.kid for k in old.published(now)] == ["a", "s"]
    old_manifest = {k: v for k, v in data["keys"][0].items() if k not in ("standby", "encryption")}
    assert KeyRecord.from_json(old_manifest) == doc.keys[0]  # and we read theirs


# --- the plan -------------------------------------------------------------------------------------
def test_forced_rotation_promotes_the_standby_and_makes_a_new_one() -> None:
    keys = (key("a", T, created=T), spare())
    result = plan(keys, T + 10, force=True)
    assert result.promote == "s" and result.new_sign_from == T + 10 + LEAD  # as a new successor's
    assert result.new_alg is None and result.new_standby_alg == "EdDSA"
    assert [c.action for c in result.changes] == ["promote", "create"]
    promoted = (keys[0], keys[1].with_changes(standby=False, sign_from=T + 10 + LEAD), spare("t", T + 10))
    assert plan(promoted, T + 11, force=True).empty  # repeating it changes nothing


def test_scheduled_rotation_promotes_the_standby_at_the_end_of_the_period() -> None:
    result = plan((key("a", T, created=T), spare()), T + 1000 - LEAD)
    assert (result.promote, result.new_sign_from) == ("s", T + 1000)
    late = plan((key("a", T, created=T), spare()), T + 1500)
    assert (late.promote, late.new_sign_from) == ("s", T + 1500 + LEAD)


def test_a_store_without_a_standby_gets_one_and_nothing_else() -> None:
    result = plan((key("a", T, created=T),), T + 10)
    assert result.promote is None and result.new_alg is None
    assert result.new_standby_alg == "EdDSA"
    assert [c.action for c in result.changes] == ["create"]
    assert plan((key("a", T, created=T),), T + 10, standby=False).empty  # exactly today's


def test_alg_change_replaces_the_standby_and_never_promotes_the_old_alg() -> None:
    keys = (key("a", T, created=T, alg="RS256"), spare(alg="RS256"))
    result = plan(keys, T + 10, alg="EdDSA")
    assert result.promote is None
    assert (result.new_alg, result.new_sign_from) == ("EdDSA", T + 10 + LEAD)
    assert result.discard == ["s"] and result.new_standby_alg == "EdDSA"
    # a pending successor of the new alg already exists: only the standby is replaced
    pending = key("b", T + 10 + LEAD, created=T + 10)
    again = plan((keys[0], pending, spare(alg="RS256")), T + 20, alg="EdDSA")
    assert again.new_alg is None and again.promote is None
    assert again.discard == ["s"] and again.new_standby_alg == "EdDSA"


def test_without_the_setting_a_leftover_standby_is_used_but_not_replaced() -> None:
    result = plan((key("a", T, created=T), spare()), T + 10, force=True, standby=False)
    assert result.promote == "s" and result.new_standby_alg is None


def test_the_standby_private_key_is_never_destroyed() -> None:
    result = plan((key("a", T, created=T), spare()), T + 500)
    assert result.empty


# --- the command line and the cron script -------------------------------------------------------
def test_cli_force_promotes_then_changes_nothing(tmp_path: Path) -> None:
    # The promoted key stays pending for AUTHSVC_KEY_PREPUBLISH: long enough that the five CLI
    # runs below end inside it on a loaded machine (CI beside a chaos soak took over 5 s).
    env = keys_env(tmp_path, key_standby="true", key_prepublish="120", key_rotation_period="600")
    (first,) = seed(env, {"sign_from": 0})
    (added,) = run_parallel([CLI_ARGS, ("keys", "rotate")], env=env)  # an old store: gets a standby
    assert added.returncode == 0, added.stderr
    (line,) = added.stdout.splitlines()
    assert line.startswith("created ") and "standby" in line
    standby = line.split()[1]
    forced = run_script("--force", env=env)
    assert forced.returncode == 0, forced.stderr
    lines = forced.stdout.splitlines()
    assert lines[0].startswith(f"promote {standby} EdDSA, forced")
    assert lines[1].startswith("created ") and "standby" in lines[1]
    assert len(lines) == 2
    again = run_parallel([CLI_ARGS, ("keys", "rotate", "--force")], [SCRIPT_ARGS, ("--force",)], env=env)
    assert [r.returncode for r in again] == [0, 0]
    assert [r.stdout for r in again] == ["", ""]
    listing = run_parallel([CLI_ARGS, ("keys", "list")], env=env)[0].stdout
    states = {row.split()[0]: row.split()[2] for row in listing.splitlines()[1:4]}
    assert states == {first.kid: "signing", standby: "pending", lines[1].split()[1]: "standby"}
    standby_row = next(row for row in listing.splitlines() if row.startswith(lines[1].split()[1]))
    assert standby_row.split()[-3:] == ["-", "-", "-"]  # no signing slot, never leaves on a schedule
    files = {p.stem for p in keys_dir(env).glob("*.pem")}
    assert files == {first.kid, standby, lines[1].split()[1]}


def test_dry_run_shows_the_promotion_and_writes_nothing(tmp_path: Path) -> None:
    env = keys_env(tmp_path, key_standby="true")
    seed(env, {"sign_from": 0})
    assert run_script(env=env).returncode == 0
    before = (keys_dir(env) / "keyset.json").read_bytes()
    planned = run_script("--force", "--dry-run", env=env)
    assert planned.returncode == 0, planned.stderr
    assert [line.split()[0:2] for line in planned.stdout.splitlines()] == [
        ["would", "promote"],
        ["would", "create"],
    ]
    assert (keys_dir(env) / "keyset.json").read_bytes() == before


# --- a live server --------------------------------------------------------------------------------
def token_kid(server: LiveServer) -> str:
    response = httpx.post(
        server.url + "/token",
        data={"grant_type": "password", "username": "alice", "password": "correct horse battery"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return str(jwt.get_unverified_header(response.json()["access_token"])["kid"])


def wait_for(check: Callable[[], bool], what: str, seconds: float = 3.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_serve_creates_a_standby_and_revoke_switches_to_it(
    live_server_factory: Callable[..., LiveServer],
) -> None:
    server = live_server_factory(signing_alg="EdDSA")
    added = server.cli("users", "add", "alice", "--password-stdin", input="correct horse battery\n")
    assert added.returncode == 0, added.stderr
    ready = httpx.get(server.url + "/readyz", timeout=10).json()
    first, standby = ready["signing_kid"], ready["standby_kid"]
    assert first and standby and first != standby
    jwks = [k["kid"] for k in httpx.get(server.url + "/.well-known/jwks.json", timeout=10).json()["keys"]]
    assert jwks == [first, standby]
    assert token_kid(server) == first
    metrics = httpx.get(server.url + "/metrics", timeout=10).text
    assert "authsvc_standby_key_published 1.0" in metrics

    revoked = server.cli("keys", "revoke", first)
    assert revoked.returncode == 0, revoked.stderr
    lines = revoked.stdout.splitlines()
    assert lines[0].startswith(f"revoked {first}")
    assert lines[1] == f"signing {standby} standby signs now"
    assert lines[2].startswith("created ") and "standby" in lines[2]
    new_standby = lines[2].split()[1]
    wait_for(lambda: token_kid(server) == standby, "the standby did not start signing within 1 s")
    ready = httpx.get(server.url + "/readyz", timeout=10).json()
    assert (ready["signing_kid"], ready["standby_kid"]) == (standby, new_standby)

    # revoking the standby publishes a new one; the signing key is untouched
    revoked = server.cli("keys", "revoke", new_standby)
    assert revoked.returncode == 0, revoked.stderr
    lines = revoked.stdout.splitlines()
    assert lines[0].startswith(f"revoked {new_standby}") and len(lines) == 2
    newest = lines[1].split()[1]
    wait_for(
        lambda: httpx.get(server.url + "/readyz", timeout=10).json()["standby_kid"] == newest,
        "the new standby was not seen within 1 s",
    )
    assert token_kid(server) == standby
