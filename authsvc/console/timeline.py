"""The key timeline, drawn: ``keys_view.key_timeline`` made into rows, spans, ticks and markers.

Pure geometry for ``console/timeline.svg.html``: one row per key, a linear time
axis (UTC) over everything worth seeing — each key's publication, its signing
slot, its retirement, a revocation, now, the next change and the next
scheduled rotation — with a little room either side. Spans too short to see at
that scale are drawn ``MIN_WIDTH`` wide; spans with no end yet run to the edge.
Every span carries the sentence a screen reader (and a tooltip) reads.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from authsvc.console.render import duration, when

__all__ = ["KINDS", "Marker", "Row", "Span", "Tick", "Timeline", "draw"]

WIDTH = 960
LABEL_WIDTH = 200  # the key column, left of the plot
PLOT_LEFT = LABEL_WIDTH + 16
PLOT_RIGHT = WIDTH - 24
TOP = 64  # the band for the markers' labels
ROW_HEIGHT = 44
BAR_HEIGHT = 20
AXIS_HEIGHT = 36
MIN_WIDTH = 4.0
SHORT_KID = 10

#: kind -> legend text, in the order of a key's life.
KINDS = {
    "pending": "Published, not yet signing",
    "standby": "Standby (published, signs when promoted)",
    "signing": "Signing",
    "retiring": "Retiring (published, no longer signing)",
    "revoked": "Revoked",
}
_STEPS = (
    60,
    300,
    900,
    1800,
    3600,
    3 * 3600,
    6 * 3600,
    12 * 3600,
    86400,
    2 * 86400,
    7 * 86400,
    14 * 86400,
    30 * 86400,
)


@dataclass(frozen=True, slots=True)
class Span:
    kind: str
    x: float
    width: float
    open_end: bool
    text: str


@dataclass(frozen=True, slots=True)
class Row:
    y: float
    kid: str
    short: str
    alg: str
    state: str
    spans: tuple[Span, ...]


@dataclass(frozen=True, slots=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True, slots=True)
class Marker:
    x: float
    at: float
    label: str


@dataclass(frozen=True, slots=True)
class Timeline:
    width: int
    height: int
    plot_left: float
    plot_right: float
    top: float
    bottom: float
    rows: tuple[Row, ...]
    ticks: tuple[Tick, ...]
    now: Marker
    next_change: Marker | None
    rotation_due: Marker | None
    next_change_text: str
    summary: str


def _short(kid: str) -> str:
    return kid if len(kid) <= SHORT_KID + 1 else kid[:SHORT_KID] + "…"


def _spans(key: Mapping[str, Any], end: float) -> list[tuple[str, float, float | None]]:
    """(kind, from, until or None for open) of one key, in time order."""
    published, signs_from, signs_until = key["published_at"], key["signs_from"], key["signs_until"]
    leaves, revoked = key["leaves_jwks_at"], key["revoked_at"]
    spans: list[tuple[str, float, float | None]] = []
    if key["standby"] or signs_from is None:
        spans.append(("standby" if key["standby"] else "pending", published, revoked))
    else:
        if signs_from > published:
            spans.append(
                ("pending", published, min(signs_from, revoked) if revoked is not None else signs_from)
            )
        if signs_until is None or signs_until > signs_from:
            spans.append(("signing", signs_from, signs_until))
        if signs_until is not None and leaves is not None and leaves > signs_until:
            spans.append(("retiring", signs_until, leaves))
    if revoked is not None:
        spans.append(("revoked", revoked, None))
    return [(kind, start, until) for kind, start, until in spans if until is None or until > start]


def _what_changes(keys: list[Mapping[str, Any]], moment: float | None) -> str:
    if moment is None:
        return ""
    for key in keys:
        short = _short(key["kid"])
        if key["signs_from"] == moment:
            return f"{short} starts signing"
        if key["signs_until"] == moment:
            return f"{short} stops signing"
        if key["leaves_jwks_at"] == moment:
            return f"{short} leaves the JWKS"
    return "a scheduled change"


def _ticks(start: float, end: float, scale: float) -> tuple[Tick, ...]:
    step = next((s for s in _STEPS if (end - start) / s <= 8), _STEPS[-1])
    form = "%b %d" if step >= 86400 else "%b %d %H:%M"
    first = (start // step + 1) * step
    ticks = []
    moment = first
    while moment < end:
        ticks.append(Tick(PLOT_LEFT + (moment - start) * scale, time.strftime(form, time.gmtime(moment))))
        moment += step
    return tuple(ticks)


def draw(view: Mapping[str, Any]) -> Timeline:
    """The timeline of ``view`` (what ``GET /admin/keys`` answers)."""
    now: float = view["now"]
    keys: list[Mapping[str, Any]] = list(view["keys"])
    moments = [now]
    for key in keys:
        moments += [
            m
            for m in (
                key["published_at"],
                key["signs_from"],
                key["signs_until"],
                key["leaves_jwks_at"],
                key["revoked_at"],
            )
            if m is not None
        ]
    for extra in (view.get("next_change"), view.get("rotation_due")):
        if extra is not None:
            moments.append(extra)
    low, high = min(moments), max(moments)
    span = max(high - low, 3600.0)
    start, end = low - span * 0.04, low + span * 1.08
    scale = (PLOT_RIGHT - PLOT_LEFT) / (end - start)

    def x_of(moment: float) -> float:
        return PLOT_LEFT + (min(max(moment, start), end) - start) * scale

    rows = []
    for index, key in enumerate(keys):
        shapes = []
        for kind, begin, until in _spans(key, end):
            left = x_of(begin)
            right = x_of(until) if until is not None else PLOT_RIGHT
            width = max(right - left, MIN_WIDTH)
            ends = f"until {when(until)}" if until is not None else "with no end scheduled"
            text = f"{_short(key['kid'])}: {KINDS[kind].lower()} from {when(begin)} {ends}"
            shapes.append(Span(kind, left, width, until is None, text))
        rows.append(
            Row(
                TOP + index * ROW_HEIGHT,
                key["kid"],
                _short(key["kid"]),
                key["alg"],
                key["state"],
                tuple(shapes),
            )
        )
    next_change, due = view.get("next_change"), view.get("rotation_due")
    what = _what_changes(keys, next_change)
    if next_change is None:
        change_text = "No change is scheduled: the signing key signs until a rotation adds its successor."
    else:
        change_text = f"Next change: {what}, {when(next_change)} (in {duration(next_change - now)})."
    max_age = int(view["jwks_max_age"])
    signing = [k for k in keys if k["state"] == "signing"]
    summary = (
        f"{len(keys)} keys. "
        + (
            f"Signing now: {_short(signing[0]['kid'])} ({signing[0]['alg']}). "
            if signing
            else "No key signs now. "
        )
        + change_text
        + f" The JWKS says max-age={max_age} ({duration(max_age)})."
        + (f" Rotation due {when(due)}." if due is not None else "")
    )
    bottom = TOP + len(keys) * ROW_HEIGHT
    return Timeline(
        width=WIDTH,
        height=int(bottom + AXIS_HEIGHT),
        plot_left=PLOT_LEFT,
        plot_right=PLOT_RIGHT,
        top=TOP,
        bottom=bottom,
        rows=tuple(rows),
        ticks=_ticks(start, end, scale),
        now=Marker(x_of(now), now, "now"),
        next_change=Marker(x_of(next_change), next_change, what) if next_change is not None else None,
        rotation_due=Marker(x_of(due), due, "rotation due") if due is not None and due > now else None,
        next_change_text=change_text,
        summary=summary,
    )
