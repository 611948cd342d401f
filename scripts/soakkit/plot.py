"""A small PNG of RSS and open descriptors over time, drawn without any plotting library.

Two panels (RSS in MiB above, descriptors below), one line per process, coloured by
instance and role (a restarted process is a new line in the same colour), minute ticks,
red ticks at the faults. A 3x5 pixel font writes the axis
numbers. Pure Python (zlib + struct): CI needs nothing beyond the project's own files.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

__all__ = ["plot_series"]

Color = tuple[int, int, int]
PALETTE: list[Color] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (23, 190, 207),
    (188, 189, 34),
    (127, 127, 127),
    (214, 39, 40),
]
_FONT = {  # 3x5 glyphs, rows top to bottom, 3 bits each
    "0": (7, 5, 5, 5, 7),
    "1": (2, 6, 2, 2, 7),
    "2": (7, 1, 7, 4, 7),
    "3": (7, 1, 7, 1, 7),
    "4": (5, 5, 7, 1, 1),
    "5": (7, 4, 7, 1, 7),
    "6": (7, 4, 7, 5, 7),
    "7": (7, 1, 1, 1, 1),
    "8": (7, 5, 7, 5, 7),
    "9": (7, 5, 7, 1, 7),
    "M": (5, 7, 7, 5, 5),
    "i": (2, 0, 2, 2, 2),
    "B": (6, 5, 6, 5, 6),
    "f": (3, 2, 7, 2, 2),
    "d": (1, 1, 7, 5, 7),
    "s": (7, 4, 7, 1, 7),
    "m": (0, 0, 7, 7, 5),
    "n": (0, 0, 6, 5, 5),
    " ": (0, 0, 0, 0, 0),
    ".": (0, 0, 0, 0, 2),
}
_FONT.update(
    {
        "a": (0, 6, 1, 7, 7),
        "b": (4, 4, 7, 5, 7),
        "e": (0, 7, 7, 4, 7),
        "h": (4, 4, 7, 5, 5),
        "k": (4, 5, 6, 6, 5),
        "l": (6, 2, 2, 2, 7),
        "o": (0, 0, 7, 5, 7),
        "p": (0, 7, 5, 7, 4),
        "r": (0, 0, 7, 4, 4),
        "u": (0, 0, 5, 5, 7),
        "v": (0, 0, 5, 5, 2),
        "w": (0, 0, 5, 7, 7),
        "-": (0, 0, 7, 0, 0),
        "/": (1, 1, 2, 4, 4),
        "t": (2, 7, 2, 2, 3),
        "c": (0, 7, 4, 4, 7),
    }
)
#: One colour per instance and role, so that the legend means something across restarts.
ROLE_COLORS: dict[str, Color] = {
    "a-worker": (31, 119, 180),
    "b-worker": (255, 127, 14),
    "a-supervisor": (44, 160, 44),
    "b-supervisor": (148, 103, 189),
    "a-helper": (160, 160, 160),
    "b-helper": (110, 110, 110),
}


class _Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.height = height
        self.pixels = bytearray(b"\xff" * (width * height * 3))

    def set(self, x: int, y: int, color: Color) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            i = (y * self.width + x) * 3
            self.pixels[i : i + 3] = bytes(color)

    def line(self, x0: int, y0: int, x1: int, y1: int, color: Color) -> None:
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err = dx + dy
        while True:
            self.set(x0, y0, color)
            if x0 == x1 and y0 == y1:
                return
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy

    def text(self, x: int, y: int, text: str, color: Color = (60, 60, 60)) -> None:
        for ch in text:
            for row, bits in enumerate(_FONT.get(ch, _FONT[" "])):
                for col in range(3):
                    if bits & (4 >> col):
                        self.set(x + col, y + row, color)
            x += 4

    def png(self) -> bytes:
        raw = b"".join(
            b"\x00" + bytes(self.pixels[y * self.width * 3 : (y + 1) * self.width * 3])
            for y in range(self.height)
        )

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b"")
        )


def _nice_top(value: float) -> float:
    for step in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000):
        if value <= step * 5:
            return step * 5
    return value


def plot_series(
    path: Path,
    series: dict[str, list[tuple[float, float, float]]],
    faults: Sequence[float],
    start: float,
    *,
    width: int = 720,
    height: int = 360,
) -> None:
    """``series``: name -> [(t, rss MiB, fds)]; ``faults``: times; ``start``: time zero."""
    canvas = _Canvas(width, height)
    left, right = 34, width - 8
    panels = [(8, height // 2 - 10, 1, "MiB"), (height // 2 + 8, height - 14, 2, "fds")]
    end = max([start + 60] + [p[0] for points in series.values() for p in points])
    span = end - start

    def xpos(t: float) -> int:
        return left + int((t - start) / span * (right - left))

    minutes = span / 60
    tick = 1 if minutes <= 10 else 5 if minutes <= 60 else 10
    for top, bottom, index, label in panels:
        values = [p[index] for points in series.values() for p in points] or [1.0]
        ymax = _nice_top(max(values) * 1.1)

        def ypos(v: float, top: int = top, bottom: int = bottom, ymax: float = ymax) -> int:
            return bottom - int(v / ymax * (bottom - top))

        for frac in (0.0, 0.5, 1.0):
            y = ypos(ymax * frac)
            canvas.line(left, y, right, y, (225, 225, 225))
            canvas.text(2, y - 2, f"{ymax * frac:.0f}")
        canvas.text(2, top + 8, label)
        m = 0
        while m * 60 <= span:
            x = xpos(start + m * 60)
            canvas.line(x, bottom, x, bottom + 2, (120, 120, 120))
            canvas.text(x - 2, bottom + 4, str(m))
            m += tick
        for t in faults:
            x = xpos(t)
            canvas.line(x, top, x, top + 4, (214, 39, 40))
        canvas.line(left, top, left, bottom, (0, 0, 0))
        canvas.line(left, bottom, right, bottom, (0, 0, 0))
        for n, (name, points) in enumerate(sorted(series.items())):
            role = "-".join(name.split("-")[:2])
            color = ROLE_COLORS.get(role, PALETTE[n % len(PALETTE)])
            previous = None
            for p in points:
                here = (xpos(p[0]), ypos(p[index]))
                if previous is not None:
                    canvas.line(*previous, *here, color)
                previous = here
    canvas.text(right - 12, height - 6, "min")
    x = left + 40
    for role, color in ROLE_COLORS.items():
        canvas.line(x, 5, x + 10, 5, color)
        canvas.line(x, 6, x + 10, 6, color)
        canvas.text(x + 13, 3, role)
        x += 16 + 4 * len(role) + 12
    canvas.text(x, 3, "red ticks: faults")
    path.write_bytes(canvas.png())
