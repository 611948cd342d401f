"""The results: rows (one figure each, with its ratio to its ceiling), targets, the report holding both."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from benchkit.console import log

__all__ = [
    "Report",
    "Row",
    "Target",
    "compute_ratios",
    "fmt_ms",
    "fmt_ratio",
    "generator_bound",
    "join_notes",
    "rate",
]


@dataclass
class Row:
    id: str
    label: str
    kind: str  # GET | POST | inproc | info
    rps: float | None = None  # requests/s or ops/s
    p50_ms: float | None = None
    p99_ms: float | None = None
    requests: int = 0
    errors: int = 0
    ceiling: str | None = None  # id of the ceiling row
    ratio_rps: float | None = None
    ratio_p50: float | None = None
    ratio_p99: float | None = None
    rss_mib: float | None = None
    # The server's CPU time (user + system, every thread) over the run ÷ the responses: ms per request.
    cpu_ms: float | None = None
    generator: str = ""
    generator_bound: bool = False
    note: str = ""


@dataclass
class Target:
    name: str
    measured: float | None
    threshold: float | None
    status: str  # PASS | MISS | n/a
    detail: str = ""


@dataclass
class Report:
    meta: dict[str, Any] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        shown = "skipped" if row.rps is None else f"{row.rps:,.0f}/s p50 {fmt_ms(row.p50_ms)} ms"
        extra = f" errors={row.errors}" if row.errors else ""
        log(f"  {row.id}: {shown}{extra}{' ' + row.note if row.note else ''}")
        return row

    def get(self, row_id: str) -> Row | None:
        for row in self.rows:
            if row.id == row_id:
                return row
        return None


def fmt_ms(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.2f}x"


def join_notes(*parts: str) -> str:
    return "; ".join(part for part in parts if part)


def rate(report: Report, row_id: str) -> float | None:
    """The row's req/s (ops/s), or None when it was not measured."""
    row = report.get(row_id)
    return row.rps if row is not None and row.rps else None


def generator_bound(report: Report, *row_ids: str) -> bool:
    return any((row := report.get(r)) is not None and row.generator_bound for r in row_ids)


def compute_ratios(report: Report) -> None:
    """Each row against its ceiling, unless the generator's own ceiling is under 1.5x the faster of them."""
    gen = {"GET": report.get("generator.get"), "POST": report.get("generator.post")}
    for row in report.rows:
        if row.ceiling is None or row.rps is None:
            continue
        ceiling = report.get(row.ceiling)
        if ceiling is None or not ceiling.rps:
            continue
        gen_row = gen.get(row.kind)
        if (
            row.kind in ("GET", "POST")
            and gen_row is not None
            and gen_row.rps
            and gen_row.rps < 1.5 * max(row.rps, ceiling.rps)
        ):
            row.generator_bound = True
            continue
        row.ratio_rps = row.rps / ceiling.rps
        if ceiling.p50_ms:
            row.ratio_p50 = (row.p50_ms or 0) / ceiling.p50_ms
        if ceiling.p99_ms:
            row.ratio_p99 = (row.p99_ms or 0) / ceiling.p99_ms
