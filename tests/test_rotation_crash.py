"""A rotation killed at any moment, or failing on a full disk, never breaks the store.

A small driver runs the rotation in a child process with the ``os`` calls that
touch the key directory (open, write, fsync, close, replace, unlink) counted;
at the Nth call it SIGKILLs itself, or raises ENOSPC / EACCES / EIO from then on.
Every N from the first call to the last is tried on a fresh copy of a store
that has all three kinds of work due (publish, destroy, prune).
"""

from __future__ import annotations

import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from authsvc.clock import SystemClock
from authsvc.keys.ring import KeyRing
from authsvc.keys.rotation import create_first_key, rotate
from authsvc.keys.store_file import FileKeyStore
from authsvc.keys.timetable import KeyState, Lifetimes, Timetable
from authsvc.keys.watcher import KeyWatcher
from tests.test_rotation_cli import SCRIPT, busy_store, keys_env

LT = Lifetimes(access_ttl=30, refresh_ttl=60, skew=0, rotation_period=20, prepublish=5, jwks_max_age=1)

DRIVER = r"""
import errno, os, runpy, signal, sys
from pathlib import Path

directory = os.path.realpath(sys.argv[1])
# op: a call name ("open", "write", ...), optionally ":part-of-the-file-name"; or "any"
op, nth, action, target = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5:]
counts = {}
fds = {}
real = {name: getattr(os, name) for name in ("open", "write", "fsync", "close", "replace", "unlink")}


def inside(path):
    return os.path.realpath(os.fspath(path)).startswith(directory)


def matches(name, path):
    if op in ("any", name):
        return True
    return op.startswith(name + ":") and op.split(":", 1)[1] in os.fspath(path)


def hit(name, path):
    if not matches(name, path):
        return
    counts[op] = counts.get(op, 0) + 1
    if action == "kill" and counts[op] == nth:
        os.kill(os.getpid(), signal.SIGKILL)
    if action != "kill" and counts[op] >= nth:  # a full disk or a denied permission persists
        code = {"enospc": errno.ENOSPC, "eacces": errno.EACCES, "eio": errno.EIO}[action]
        raise OSError(code, os.strerror(code))


def _open(path, flags, mode=0o777, *args, **kwargs):
    if not inside(path):
        return real["open"](path, flags, mode, *args, **kwargs)
    hit("open", path)
    fd = real["open"](path, flags, mode, *args, **kwargs)
    fds[fd] = os.fspath(path)
    return fd


def _write(fd, data):
    if fd in fds:
        hit("write", fds[fd])
    return real["write"](fd, data)


def _fsync(fd):
    if fd in fds:
        hit("fsync", fds[fd])
    return real["fsync"](fd)


def _close(fd):
    if fd in fds:
        hit("close", fds.pop(fd))
    return real["close"](fd)


def _replace(src, dst, *args, **kwargs):
    if inside(dst):
        hit("replace", dst)
    return real["replace"](src, dst, *args, **kwargs)


def _unlink(path, *args, **kwargs):
    if inside(path):
        hit("unlink", path)
    return real["unlink"](path, *args, **kwargs)


os.open, os.write, os.fsync, os.close = _open, _write, _fsync, _close
os.replace, os.unlink = _replace, _unlink

if target[0] == "script":
    sys.argv = [target[1], *target[2:]]
    try:
        runpy.run_path(target[1], run_name="__main__")
    finally:
        print("calls", counts.get(op, 0), file=sys.stderr)
else:
    from authsvc.clock import SystemClock
    from authsvc.keys.rotation import create_first_key, revoke_key, rotate
    from authsvc.keys.store_file import FileKeyStore
    from authsvc.keys.timetable import Lifetimes

    store = FileKeyStore(Path(sys.argv[1]))
    if target[0] == "first":
        create_first_key(store, "EdDSA", SystemClock(), None)
    elif target[0] == "rotate":
        rotate(store, Lifetimes(30, 60, 0, 20, 5, 1), SystemClock(), "EdDSA", None, force="--force" in target)
    else:
        revoke_key(store, target[1], SystemClock(), "EdDSA", None)
    print("calls", counts.get(op, 0), file=sys.stderr)
"""


def drive(
    directory: Path, op: str, nth: int, action: str, *target: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", DRIVER, str(directory), op, str(nth), action, *target],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def calls(result: subprocess.CompletedProcess[str]) -> int:
    line = [line for line in result.stderr.splitlines() if line.startswith("calls ")][-1]
    return int(line.split()[1])


def assert_sound(directory: Path) -> None:
    """The store loads and signs; every key that may sign has its private half; modes are private."""
    store = FileKeyStore(directory)
    doc = store.read()
    now = time.time()
    table = Timetable(doc.keys, LT)
    for record in doc.keys:
        if table.state(record, now) in (KeyState.PENDING, KeyState.SIGNING):
            assert record.private_deleted_at is None
            assert (directory / f"{record.kid}.pem").exists(), f"{record.kid} may sign but has no private key"
    ring = KeyRing(LT, SystemClock(), "EdDSA")
    KeyWatcher(store, ring, None).load()
    assert ring.signing_key().kid == table.signing(now).kid  # type: ignore[union-attr]
    for path in directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path.name


def assert_settled(directory: Path) -> None:
    """After one more complete run: no leftovers, private files exactly for keys that may sign."""
    store = FileKeyStore(directory)
    rotate(store, LT, SystemClock(), "EdDSA", None)
    doc = store.read()
    table = Timetable(doc.keys, LT)
    now = time.time()
    may_sign = {k.kid for k in doc.keys if table.state(k, now) in (KeyState.PENDING, KeyState.SIGNING)}
    assert store.private_kids() == may_sign
    assert not [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]
    assert_sound(directory)


@pytest.fixture
def base(tmp_path: Path) -> Path:
    env = keys_env(tmp_path)
    busy_store(env)
    directory = Path(env["AUTHSVC_KEYS_DIR"])
    (directory / ".lock").touch(mode=0o600)
    return directory


def fresh(base: Path, tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(base, target)
    return target


def sweep(base: Path, tmp_path: Path, *target: str) -> int:
    """Kill the run at every counted call; check the store after each crash and after a rerun."""
    total = calls(drive(fresh(base, tmp_path, "count"), "any", 0, "kill", *target))
    assert total >= 15, total  # lock, two atomic writes, deletions
    generations = set()
    for n in range(1, total + 1):
        directory = fresh(base, tmp_path, f"kill-{n}")
        result = drive(directory, "any", n, "kill", *target)
        assert result.returncode == -signal.SIGKILL, (n, result.stderr)
        assert_sound(directory)
        generations.add(FileKeyStore(directory).read().generation)
        assert_settled(directory)
    assert generations == {1, 2}  # killed before and after the commit point
    return total


def test_sigkill_at_every_step_of_a_rotation(base: Path, tmp_path: Path) -> None:
    sweep(base, tmp_path, "rotate", "--force")


def test_sigkill_at_every_step_of_an_emergency_revocation(base: Path, tmp_path: Path) -> None:
    doc = FileKeyStore(base).read()
    signing = Timetable(doc.keys, LT).signing(time.time())
    assert signing is not None
    sweep(base, tmp_path, "revoke", signing.kid)


def test_sigkill_of_the_real_script_at_the_commit(base: Path, tmp_path: Path) -> None:
    env = keys_env(tmp_path)
    for nth in (1, 2):  # the new private key's rename, then the manifest's
        directory = fresh(base, tmp_path, f"script-{nth}")
        env["AUTHSVC_KEYS_DIR"] = str(directory)
        result = drive(directory, "replace", nth, "kill", "script", str(SCRIPT), env=env)
        assert result.returncode == -signal.SIGKILL, result.stderr
        assert_sound(directory)
        assert_settled(directory)


@pytest.mark.parametrize(
    ("op", "action", "message"),
    [
        ("open:.lock", "eacces", "Permission denied"),  # the lock file
        ("open:.tmp", "eacces", "Permission denied"),  # the new private key's temporary file
        ("write:.tmp", "enospc", "No space left on device"),  # the new private key
        ("write:.keyset.json", "enospc", "No space left on device"),  # the manifest
        ("fsync:.keyset.json", "enospc", "No space left on device"),
        ("replace:keyset.json", "eacces", "Permission denied"),  # the manifest's rename
    ],
)
def test_disk_full_or_permission_denied_leaves_the_store_unchanged(
    base: Path, tmp_path: Path, op: str, action: str, message: str
) -> None:
    env = keys_env(tmp_path)
    directory = fresh(base, tmp_path, "failing")
    env["AUTHSVC_KEYS_DIR"] = str(directory)
    manifest = (directory / "keyset.json").read_bytes()
    files = sorted(p.name for p in directory.iterdir())
    result = drive(directory, op, 1, action, "script", str(SCRIPT), env=env)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if not line.startswith("calls ")]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"rotate_keys: cannot {'lock' if 'lock' in op else 'write'} key store")
    assert message in errors[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert (directory / "keyset.json").read_bytes() == manifest
    assert sorted(p.name for p in directory.iterdir()) == files
    assert_sound(directory)


def test_failure_after_the_manifest_rename_keeps_the_new_key(base: Path, tmp_path: Path) -> None:
    """The directory fsync after the rename fails: the change is made; the new key's file must stay."""
    env = keys_env(tmp_path)
    directory = fresh(base, tmp_path, "eio")
    env["AUTHSVC_KEYS_DIR"] = str(directory)
    result = drive(directory, "fsync", 4, "eio", "script", str(SCRIPT), env=env)
    assert result.returncode == 1
    assert "Input/output error" in result.stderr
    doc = FileKeyStore(directory).read()
    assert doc.generation == 2
    assert (directory / f"{doc.keys[-1].kid}.pem").exists()
    assert_sound(directory)
    assert_settled(directory)


def test_sigkill_while_serve_creates_the_first_key(tmp_path: Path) -> None:
    directory = tmp_path / "first"
    total = calls(drive(directory, "any", 0, "kill", "first"))
    for n in range(1, total + 1):
        shutil.rmtree(directory, ignore_errors=True)
        result = drive(directory, "any", n, "kill", "first")
        assert result.returncode == -signal.SIGKILL, (n, result.stderr)
        store = FileKeyStore(directory)
        if store.read().keys:
            assert_sound(directory)
        else:  # killed before the commit: the next start creates the key
            assert create_first_key(store, "EdDSA", SystemClock(), None) is not None
        assert_settled(directory)
