"""Where things run: the servers on one core, the load generator on another (when there are two)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator

__all__ = ["Cores"]


class Cores:
    """Server on core 1, generator on core 0, pinned with ``taskset`` / ``sched_setaffinity``."""

    def __init__(self) -> None:
        try:
            available = sorted(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            available = list(range(os.cpu_count() or 1))
        self.available = available
        self.pinned = len(available) >= 2 and shutil.which("taskset") is not None
        self.server_core = available[1] if self.pinned else None
        self.generator_core = available[0] if self.pinned else None

    def server_prefix(self) -> list[str]:
        return ["taskset", "-c", str(self.server_core)] if self.pinned else []

    def generator_prefix(self) -> list[str]:
        return ["taskset", "-c", str(self.generator_core)] if self.pinned else []

    def describe(self) -> str:
        if not self.pinned:
            return f"not pinned ({len(self.available)} core(s) or no taskset)"
        return f"server on core {self.server_core} (taskset), generator on core {self.generator_core}"

    @contextlib.contextmanager
    def on_server_core(self) -> Iterator[None]:
        """Run in-process measurements where the servers run."""
        if self.server_core is None:
            yield
            return
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {self.server_core})
        try:
            yield
        finally:
            os.sched_setaffinity(0, before)

    def pin_self_to_generator(self) -> None:
        if self.generator_core is not None:
            os.sched_setaffinity(0, {self.generator_core})
