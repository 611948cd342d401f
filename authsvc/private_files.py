"""Files authsvc creates are private to the user it runs as: 0600, directories 0700.

They hold password hashes, sessions, refresh tokens and keys. Two layers keep
them private. The entry points (``authsvc``, ``scripts/rotate_keys.py``) set
the process umask to 0o077 before anything else, so whatever creates a file
in that process — SQLite, filelock, code added later — creates it private.
And the code that creates a secret file sets its mode itself, so an app
embedded in another process with a loose umask is private too.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["PRIVATE_UMASK", "create_private_file", "make_private", "restrict_umask"]

PRIVATE_UMASK = 0o077


def restrict_umask() -> None:
    """Make everything this process creates from now on private (an entry point's first act)."""
    os.umask(PRIVATE_UMASK)


def _make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and its missing parents 0700; existing ones are left as they are."""
    missing: list[Path] = []
    while not directory.exists() and directory != directory.parent:
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process was quicker: fine
            path.mkdir(mode=0o700)
            os.chmod(path, 0o700)  # mkdir's mode passes through the umask


def create_private_file(path: Path) -> bool:
    """Create ``path`` empty and 0600 (parents 0700) unless it exists; True if this call made it."""
    _make_private_dirs(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, 0o600)  # the mode above passes through the umask
    finally:
        os.close(fd)
    return True


def make_private(path: Path) -> None:
    """Set an existing file to 0600 (a file an older version or another tool left readable)."""
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_mode & 0o777 != 0o600:
            os.chmod(path, 0o600)
