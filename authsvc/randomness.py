"""Random ids for the hot path, from the OS's CSPRNG read ahead a page at a time.

``secrets.token_urlsafe`` makes one ``getrandom`` call per id, and CPython
releases the GIL around it: on a busy server the calling thread then waits
for the GIL to come back, which a refresh's profile showed as 13 % of its
samples (the token issuer mints ids on the database worker thread, inside the
transaction that holds SQLite's write lock). Here each thread reads 4 KiB of
``os.urandom`` at once and hands out slices: the same bytes, one call per few
hundred ids. A forked child drops what it inherited, so no two processes ever
hand out the same bytes.
"""

from __future__ import annotations

import base64
import os
import threading

__all__ = ["token_urlsafe"]

_PAGE = 4096


class _Pool(threading.local):
    def __init__(self) -> None:
        self.page = b""
        self.offset = 0


_pool = _Pool()


def _bytes(n: int) -> bytes:
    pool = _pool
    if pool.offset + n > len(pool.page):
        pool.page = os.urandom(max(_PAGE, n))
        pool.offset = 0
    start = pool.offset
    pool.offset = start + n
    return pool.page[start : start + n]


def token_urlsafe(nbytes: int) -> str:
    """Like ``secrets.token_urlsafe``: ``nbytes`` random bytes, base64url without padding."""
    return base64.urlsafe_b64encode(_bytes(nbytes)).rstrip(b"=").decode("ascii")


def _forget_after_fork() -> None:
    global _pool
    _pool = _Pool()


os.register_at_fork(after_in_child=_forget_after_fork)
