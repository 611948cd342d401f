"""scripts/rotate_keys.py and ``authsvc keys ...`` through their real entry points.

Stores are seeded with keys whose timestamps lie in the past, so a single run
has something of every kind to do (publish a successor, destroy a retired
private key, prune a forgotten key) without waiting in real time.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from authsvc.keys.generate import generate_key, private_pem
from authsvc.keys.model import KeyRecord, KeySetDoc
from authsvc.keys.store_file import FileKeyStore
from tests.support import authsvc_command, create_database, run_cli, server_env

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "rotate_keys.py"

# access 30 s, refresh 60 s, period 20 s, prepublish 5 s, no skew
TIMINGS = {
    "signing_alg": "EdDSA",
    "access_token_ttl": "30",
    "refresh_token_ttl": "60",
    "key_rotation_period": "20",
    "key_prepublish": "5",
    "jwks_max_age": "1",
    "clock_skew": "0",
    # These tests pin the timetable without a standby key: with AUTHSVC_KEY_STANDBY=false
    # behaviour is exactly what it was before the standby existed. tests/test_key_standby.py
    # covers the default.
    "key_standby": "false",
}


def keys_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = server_env(tmp_path, **{**TIMINGS, **settings})
    create_database(env)  # rotate_keys.py prunes it, and refuses to run without one
    return env


def keys_dir(env: dict[str, str]) -> Path:
    return Path(env["AUTHSVC_KEYS_DIR"])


SCRIPT_ARGS = [sys.executable, str(SCRIPT)]
CLI_ARGS = authsvc_command()


def run_parallel(*runs: list[Any], env: dict[str, str]) -> list[subprocess.CompletedProcess[str]]:
    """Start every ``[command, args(, env)]`` at once; the results in order."""
    procs = []
    for run in runs:
        command, args = run[0], run[1]
        procs.append(
            subprocess.Popen(
                [*command, *args],
                env=run[2] if len(run) > 2 else env,
                cwd=keys_dir(env).parent,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = []
    for proc in procs:
        with proc:
            out, err = proc.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


def run_script(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=keys_dir(env).parent,
        check=False,
    )


def seed(env: dict[str, str], *keys: dict[str, Any]) -> list[KeyRecord]:
    """Write a store holding keys with the given timestamps (relative to now, seconds)."""
    store = FileKeyStore(keys_dir(env))
    store.ensure_directory()
    now = time.time()
    records = []
    for spec in keys:
        generated = generate_key(spec.get("alg", "EdDSA"))
        deleted = spec.get("private_deleted")
        if deleted is None:
            store.write_private(generated.kid, private_pem(generated.private_key, None))
        records.append(
            KeyRecord(
                generated.kid,
                generated.alg,
                generated.public_jwk,
                created_at=now + spec.get("created", spec["sign_from"]),
                sign_from=now + spec["sign_from"],
                private_deleted_at=None if deleted is None else now + deleted,
            )
        )
    store.write(KeySetDoc(keys=tuple(records), generation=1))
    return records


def first_key(env: dict[str, str]) -> KeyRecord:
    return seed(env, {"sign_from": 0})[0]


def store_doc(env: dict[str, str]) -> KeySetDoc:
    return FileKeyStore(keys_dir(env)).read()


def snapshot(directory: Path, *, with_lock: bool = True) -> dict[str, tuple[bytes, int, int]]:
    return {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_mode)
        for p in sorted(directory.iterdir())
        if with_lock or p.name != ".lock"
    }


def one_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def busy_store(env: dict[str, str]) -> list[KeyRecord]:
    """A: forgotten (prunable); B: retired, private still on disk; C: signing, successor due."""
    return seed(
        env,
        {"sign_from": -200, "private_deleted": -100},
        {"sign_from": -100},
        {"sign_from": -18},
    )


# --- exit codes and the docstring -----------------------------------------------------
def test_docstring_documents_the_exit_codes() -> None:
    doc = ast.get_docstring(ast.parse(SCRIPT.read_text())) or ""
    for code in ("0 ", "1 ", "2 "):
        assert code in doc
    assert "--dry-run" in doc
    assert "--force" in doc


def test_refusals_exit_1_and_usage_errors_exit_2(tmp_path: Path) -> None:
    env = keys_env(tmp_path)
    missing = run_parallel(
        [SCRIPT_ARGS, ("--force",)],
        [CLI_ARGS, ("keys", "list")],
        [CLI_ARGS, ("keys", "revoke", "x" * 43)],
        env=env,
    )
    for result in missing:
        assert result.returncode == 1, result
        assert "empty" in one_line(result.stderr)
        assert result.stdout == ""
    assert not keys_dir(env).exists()  # only `serve` creates the store
    keys_dir(env).mkdir(mode=0o700)
    bad = keys_env(tmp_path, key_prepublish="soon")
    empty, bogus, bad_setting = run_parallel(
        [SCRIPT_ARGS, ("--dry-run",)],
        [SCRIPT_ARGS, ("--bogus",)],
        [SCRIPT_ARGS, (), bad],
        env=env,
    )
    assert empty.returncode == 1
    assert "empty" in one_line(empty.stderr)
    assert list(keys_dir(env).iterdir()) == []
    assert bogus.returncode == 2
    assert "Traceback" not in bogus.stderr
    assert bad_setting.returncode == 1
    assert "AUTHSVC_KEY_PREPUBLISH" in one_line(bad_setting.stderr)


def test_unreadable_store_is_one_line_exit_1(tmp_path: Path) -> None:
    env = keys_env(tmp_path)
    first_key(env)
    (keys_dir(env) / "keyset.json").write_text("{not json")
    for result in run_parallel([SCRIPT_ARGS, ()], [CLI_ARGS, ("keys", "list")], env=env):
        assert result.returncode == 1
        assert "corrupt" in one_line(result.stderr)


# --- one line per change, idempotent, dry run -----------------------------------------------
def test_dry_run_then_one_line_per_change_then_nothing(tmp_path: Path) -> None:
    env = keys_env(tmp_path)
    a, b, c = busy_store(env)
    directory = keys_dir(env)
    (directory / ".lock").touch(mode=0o600)
    before = snapshot(directory)
    dir_mtime = directory.stat().st_mtime_ns
    dry_runs = run_parallel(
        [SCRIPT_ARGS, ("--dry-run",)],
        [SCRIPT_ARGS, ("--dry-run", "--force")],
        [CLI_ARGS, ("keys", "rotate", "--dry-run")],
        env=env,
    )
    for result in dry_runs:
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert len(lines) == 3, lines
        assert all(line.startswith("would ") for line in lines)
        assert "would create (new) EdDSA, " in result.stdout
        assert f"would prune {a.kid} " in result.stdout
        assert f"would destroy-private {b.kid} " in result.stdout
    assert snapshot(directory) == before  # names, contents, modes and mtimes
    assert directory.stat().st_mtime_ns == dir_mtime

    result = run_script(env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3, lines
    created = [line for line in lines if line.startswith("created ")]
    assert len(created) == 1
    assert "EdDSA, scheduled: published now, signs from" in created[0]
    assert f"prune {a.kid} " in result.stdout
    assert f"destroy-private {b.kid} " in result.stdout
    doc = store_doc(env)
    assert [k.kid for k in doc.keys][:2] == [b.kid, c.kid]
    assert len(doc.keys) == 3
    new = doc.keys[2]
    assert created[0].split()[1] == new.kid
    assert FileKeyStore(directory).private_kids() == {c.kid, new.kid}
    # a scheduled successor signs when the period ends, after prepublication
    assert new.sign_from == pytest.approx(c.sign_from + 20)
    assert new.sign_from - new.created_at >= 5

    # idempotent, and --force with a pending successor changes nothing
    before = snapshot(directory, with_lock=False)
    for again in run_parallel([SCRIPT_ARGS, ()], [CLI_ARGS, ("keys", "rotate", "--force")], env=env):
        assert (again.returncode, again.stdout, again.stderr) == (0, "", "")
    assert snapshot(directory, with_lock=False) == before


def test_force_once_then_alg_change(tmp_path: Path) -> None:
    env = keys_env(tmp_path, key_prepublish="60", key_rotation_period="600")
    first = first_key(env)
    started = time.time()
    result = run_script("--force", env=env)
    assert result.returncode == 0, result.stderr
    line = one_line(result.stdout)
    assert line.startswith("created ")
    assert "EdDSA, forced: published now, signs from" in line
    doc = store_doc(env)
    assert doc.keys[0].kid == first.kid
    new = doc.keys[1]
    assert new.kid == line.split()[1]
    assert started <= new.created_at <= time.time()
    assert new.sign_from >= new.created_at + 60
    assert line.endswith(datetime.fromtimestamp(new.sign_from, UTC).isoformat(timespec="seconds"))
    before = snapshot(keys_dir(env), with_lock=False)
    for again in run_parallel(
        [SCRIPT_ARGS, ("--force",)], [CLI_ARGS, ("keys", "rotate", "--force")], env=env
    ):
        assert (again.returncode, again.stdout, again.stderr) == (0, "", "")
    assert snapshot(keys_dir(env), with_lock=False) == before

    # a new AUTHSVC_SIGNING_ALG: the next run publishes a key of that alg at once
    es256 = keys_env(tmp_path, key_prepublish="60", key_rotation_period="600", signing_alg="ES256")
    result = run_script(env=es256)
    assert result.returncode == 0, result.stderr
    assert "ES256, algorithm changes from EdDSA" in one_line(result.stdout)
    newest = store_doc(env).keys[-1]
    assert newest.alg == newest.public_jwk["alg"] == "ES256"
    assert newest.sign_from - newest.created_at >= 60
    assert newest.sign_from >= new.sign_from  # after the pending EdDSA key, never before it
    assert run_script(env=es256).stdout == ""


# --- the lock -----------------------------------------------------------------------------------
HOLDER = """
import sys, time, contextlib
from pathlib import Path
from filelock import FileLock
from authsvc.clock import SystemClock
from authsvc.keys.rotation import rotate
from authsvc.keys.store_file import FileKeyStore
from authsvc.keys.timetable import Lifetimes

class Held(FileKeyStore):
    @contextlib.contextmanager
    def lock(self, timeout=60.0):
        yield

directory = Path(sys.argv[1])
with FileLock(directory / ".lock"):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    lifetimes = Lifetimes(30, 60, 0, 20, 5, 1)
    changes = rotate(Held(directory), lifetimes, SystemClock(), "EdDSA", None, force=True)
    print(changes[0].kid, flush=True)
"""


def test_a_run_waits_for_the_lock_and_plans_again(tmp_path: Path) -> None:
    env = keys_env(tmp_path)
    first_key(env)
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(keys_dir(env)), "2.5"], env=env, stdout=subprocess.PIPE, text=True
    ) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        result = run_script("--force", env=env)
        created = holder.stdout.readline().strip()
        assert holder.wait(timeout=30) == 0
    # The holder published a successor while it held the lock; the waiting run
    # planned again once it had the lock, found it pending, and changed nothing.
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert [k.kid for k in store_doc(env).keys][1:] == [created]


LOCK_FOREVER = (
    "import sys, time; from filelock import FileLock; "
    "lock = FileLock(sys.argv[1]); lock.acquire(); print('locked', flush=True); time.sleep(60)"
)


def test_lock_held_too_long_is_one_line_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from authsvc.cli_keys import cron_main
    from authsvc.keys import rotation

    env = keys_env(tmp_path)
    first_key(env)
    for name, value in env.items():
        if name.startswith("AUTHSVC_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setattr(rotation, "LOCK_TIMEOUT", 0.3)  # 60 s in production
    cmd = [sys.executable, "-c", LOCK_FOREVER, str(keys_dir(env) / ".lock")]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "locked"
            assert cron_main(["--force"]) == 1
        finally:
            holder.kill()
    assert "locked by another process" in one_line(capsys.readouterr().err)
    assert len(store_doc(env).keys) == 1


# --- keys list ----------------------------------------------------------------------------------
def when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def test_keys_list_shows_states_times_and_a_timeline(tmp_path: Path) -> None:
    env = keys_env(tmp_path)
    _a, b, c = busy_store(env)
    # Two minutes ahead: a slow CLI start on a loaded machine (the key decryption) must not
    # reach it (at +2 s the pending key had started signing by the time `keys list` read it).
    pending = seed_more(env, sign_from=+120, created=-3)
    result = run_cli("keys", "list", env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "KID",
        "ALG",
        "STATE",
        "PUBLISHED",
        "SIGNS",
        "FROM",
        "STOPS",
        "SIGNING",
        "LEAVES",
        "JWKS",
    ]
    rows = {line.split()[0]: line for line in lines[1:5]}
    assert rows[b.kid].split()[1:3] == ["EdDSA", "retiring"]
    assert rows[c.kid].split()[2] == "signing"
    assert rows[pending.kid].split()[2] == "pending"
    # b: published, signs from, stops signing (= c.sign_from), leaves the JWKS (+ access TTL + skew)
    for ts in (b.created_at, b.sign_from, c.sign_from, c.sign_from + 30):
        assert when(ts) in rows[b.kid]
    assert when(pending.sign_from) in rows[c.kid]  # c stops signing when the pending key starts
    assert re.search(r" -\s+-$", rows[pending.kid])  # no end yet
    timeline = [line for line in lines if "|" in line]
    assert len(timeline) == 5  # four keys and the "now" line
    assert timeline[-1].startswith("now")
    assert "^" in timeline[-1]
    assert "#" in timeline[1]
    assert "rotation overdue" not in result.stdout


def seed_more(env: dict[str, str], **spec: float) -> KeyRecord:
    store = FileKeyStore(keys_dir(env))
    doc = store.read()
    generated = generate_key("EdDSA")
    store.write_private(generated.kid, private_pem(generated.private_key, None))
    now = time.time()
    record = KeyRecord(
        generated.kid,
        "EdDSA",
        generated.public_jwk,
        created_at=now + spec["created"],
        sign_from=now + spec["sign_from"],
    )
    store.write(KeySetDoc(keys=(*doc.keys, record), generation=doc.generation + 1))
    return record


def test_keys_list_reports_rotation_overdue(tmp_path: Path) -> None:
    env = keys_env(tmp_path)
    seed(env, {"sign_from": -100})
    result = run_cli("keys", "list", env=env)
    assert result.returncode == 0
    assert "rotation overdue" in result.stdout.splitlines()[-1]
    assert "signing" in result.stdout.splitlines()[1]
    rotated = run_script(env=env)
    assert rotated.returncode == 0
    assert "scheduled" in one_line(rotated.stdout)
    assert "rotation overdue" not in run_cli("keys", "list", env=env).stdout


# --- revoke ---------------------------------------------------------------------------------------
def test_revoke_through_the_cli(tmp_path: Path) -> None:
    env = keys_env(tmp_path)
    first, pending = seed(env, {"sign_from": -1}, {"sign_from": +30, "created": -1})
    unknown, revoked = run_parallel(
        [CLI_ARGS, ("keys", "revoke", "-" + "A" * 42)],  # a kid may start with "-": not an option
        [CLI_ARGS, ("keys", "revoke", pending.kid)],
        env=env,
    )
    assert unknown.returncode == 1
    assert "no key" in one_line(unknown.stderr)
    # revoking the pending key: gone at once; the current key keeps its slot
    assert revoked.returncode == 0, revoked.stderr
    assert one_line(revoked.stdout).startswith(f"revoked {pending.kid}")
    assert not (keys_dir(env) / f"{pending.kid}.pem").exists()
    again, signing = run_parallel(
        [CLI_ARGS, ("keys", "revoke", pending.kid)], [CLI_ARGS, ("keys", "revoke", first.kid)], env=env
    )
    assert again.returncode == 0
    assert "already revoked" in one_line(again.stdout)
    # revoking the signing key without a pending successor: a new key signs now
    assert signing.returncode == 0, signing.stderr
    lines = signing.stdout.splitlines()
    assert lines[0].startswith(f"revoked {first.kid}")
    assert lines[1].startswith("created ")
    assert "replacement, signing now" in lines[1]
    listing = run_cli("keys", "list", env=env).stdout
    rows = {line.split()[0]: line.split() for line in listing.splitlines() if line.split()}
    assert rows[first.kid][2] == rows[pending.kid][2] == "revoked"
    assert rows[lines[1].split()[1]][2] == "signing"
