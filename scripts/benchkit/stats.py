"""Latency percentiles: one definition (nearest rank) for every row the bench computes itself."""

from __future__ import annotations

import math

__all__ = ["percentile"]


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    index = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[index]
