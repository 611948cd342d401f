"""The real ``authsvc`` CLI entry, with its clock offset by the seconds written in a file.

One instance of the soak runs through this module with ``SOAK_CLOCK_FILE`` set: the
offset (a float, 0 when the file is missing) is added to ``SystemClock.now``, authsvc's
injected clock, and re-read at most once a second so the fault can change it while the
instance runs. The patch is applied at import: ``serve --workers N`` spawns its workers
with multiprocessing's spawn method, which imports this module again in each worker as
``__mp_main__`` (without running the ``__main__`` block), so every worker is skewed too.
Without ``SOAK_CLOCK_FILE`` nothing is patched: the soak runs every CLI command this way.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import authsvc.clock

__all__ = ["offset"]

_FILE = os.environ.get("SOAK_CLOCK_FILE")
_state = {"offset": 0.0, "read_at": -1.0}


def offset() -> float:
    """The current offset in seconds (cached for one second of monotonic time)."""
    now = time.monotonic()
    if _FILE and now - _state["read_at"] >= 1.0:
        _state["read_at"] = now
        try:
            _state["offset"] = float(Path(_FILE).read_text().strip() or 0)
        except (OSError, ValueError):
            _state["offset"] = 0.0
    return _state["offset"]


def _skewed_now(self: authsvc.clock.SystemClock) -> float:
    return time.time() + offset()


if _FILE:
    authsvc.clock.SystemClock.now = _skewed_now  # type: ignore[method-assign]


if __name__ == "__main__":
    from authsvc.cli_entry import main

    sys.argv[0] = "authsvc"
    sys.exit(main())
