"""Ids read ahead from the OS (``authsvc.randomness``): never repeated, across threads and forks."""

from __future__ import annotations

import base64
import os
import threading

from authsvc.randomness import token_urlsafe
from authsvc.tokens.issuer import new_jti


def test_ids_have_the_asked_size_and_do_not_repeat() -> None:
    ids = [token_urlsafe(18) for _ in range(5000)]  # more than one page
    assert len(set(ids)) == len(ids)
    assert all(len(base64.urlsafe_b64decode(i + "=" * (-len(i) % 4))) == 18 for i in ids)
    assert len(token_urlsafe(5000)) > 6000, "expected a request larger than a page served whole"
    assert len(new_jti()) == 24


def test_threads_never_share_bytes() -> None:
    drawn: list[list[str]] = [[] for _ in range(4)]

    def draw(out: list[str]) -> None:
        out.extend(token_urlsafe(16) for _ in range(2000))

    threads = [threading.Thread(target=draw, args=(out,)) for out in drawn]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [i for out in drawn for i in out]
    assert len(set(every)) == len(every)


def test_a_forked_child_does_not_hand_out_the_parents_read_ahead_bytes() -> None:
    token_urlsafe(16)  # the parent has a page read ahead
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, ",".join(token_urlsafe(16) for _ in range(10)).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = set(os.read(read, 4096).decode().split(","))
    os.close(read)
    os.close(write)
    parent = {token_urlsafe(16) for _ in range(10)}
    assert len(child) == 10 and not child & parent, "expected the child to read its own bytes"
