"""What /proc says about the processes under test: children, RSS, open descriptors."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["children", "cmdline", "fd_count", "rss_kib"]


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (every thread's list: the kernel keeps them per task)."""
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            out += [int(p) for p in text.split()]
    except OSError:
        return []
    return sorted(set(out))


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def fd_count(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
