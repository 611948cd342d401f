"""The key store on disk: one manifest plus one PEM file per private key.

Layout of ``AUTHSVC_KEYS_DIR`` (mode 0700)::

    keyset.json      every key's public JWK and timestamps (the truth)
    <kid>.pem        PKCS#8 private key, 0600, encrypted if a passphrase is set
    .lock            the file lock every writer holds

Every file is written to a temporary file, fsynced and renamed into place, so
a crash at any moment leaves either the old or the new manifest. A rotation
writes the new private key first and the manifest last: the manifest never
names a key whose private half is not yet on disk. Orphaned PEM files (from a
crash between the two) are removed by the next writer.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from authsvc.errors import KeyStoreError
from authsvc.keys.model import KeySetDoc

__all__ = ["FileKeyStore", "atomic_write"]

MANIFEST = "keyset.json"
_KID_RE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new file, never a part."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileKeyStore:
    """Reads and writes the key set in a directory."""

    kind = "file"

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.manifest = self.directory / MANIFEST

    def describe(self) -> str:
        return str(self.directory)

    # --- reading (no lock: writers replace files atomically) -----------------
    def version(self) -> tuple[int, int, int] | None:
        """A cheap fingerprint of the manifest, to notice changes."""
        try:
            st = os.stat(self.manifest)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise KeyStoreError(f"key store {self.directory} is unreadable: {exc.strerror}") from None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def read(self) -> KeySetDoc:
        """The key set; an empty one if the store has no manifest yet."""
        try:
            raw = self.manifest.read_bytes()
        except FileNotFoundError:
            return KeySetDoc()
        except OSError as exc:
            raise KeyStoreError(f"key store {self.directory} is unreadable: {exc.strerror}") from None
        try:
            return KeySetDoc.from_json(json.loads(raw))
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyStoreError(f"key store manifest {self.manifest} is corrupt: {exc}") from None

    def read_private(self, kid: str) -> bytes | None:
        """The PEM of ``kid``'s private key, or None if it was deleted."""
        try:
            return self._private_path(kid).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise KeyStoreError(f"private key {kid} is unreadable: {exc.strerror}") from None

    # --- writing (callers hold ``lock()``) ------------------------------------
    @contextlib.contextmanager
    def lock(self, timeout: float = 60.0) -> Iterator[None]:
        """Exclusive across processes and hosts sharing the directory."""
        self.ensure_directory()
        lock = FileLock(self.directory / ".lock", timeout=timeout, mode=0o600)
        try:
            lock.acquire()
        except Timeout:
            raise KeyStoreError(f"key store {self.directory} is locked by another process") from None
        except OSError as exc:
            raise KeyStoreError(f"cannot lock key store {self.directory}: {exc.strerror}") from None
        try:
            yield
        finally:
            lock.release()

    def ensure_directory(self) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.directory, 0o700)
        except OSError as exc:
            raise KeyStoreError(f"cannot create key store {self.directory}: {exc.strerror}") from None

    def write_private(self, kid: str, pem: bytes) -> None:
        atomic_write(self._private_path(kid), pem, 0o600)

    def write(self, doc: KeySetDoc) -> None:
        """Replace the manifest (the commit point of every change)."""
        data = json.dumps(doc.to_json(), indent=2, sort_keys=True).encode() + b"\n"
        atomic_write(self.manifest, data, 0o600)

    def delete_private(self, kid: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._private_path(kid).unlink()

    def private_kids(self) -> set[str]:
        """Kids that have a private key file (to clean up orphans)."""
        kids = set()
        for path in self.directory.glob("*.pem"):
            if _KID_RE.match(path.stem):
                kids.add(path.stem)
        return kids

    def clean_temporaries(self) -> None:
        for path in self.directory.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                path.unlink()

    def _private_path(self, kid: str) -> Path:
        if not _KID_RE.match(kid):
            raise KeyStoreError("malformed kid in key store")
        return self.directory / f"{kid}.pem"
