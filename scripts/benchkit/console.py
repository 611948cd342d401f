"""What the bench prints while it runs: one timestamped line per step."""

from __future__ import annotations

import time

__all__ = ["log"]


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)
