"""What every chart shares: the canvas, readable y-axis ticks, value formats with their
unit, labels that fit their room (cut with "…", the whole text in a hover title), a
legend that wraps, and x labels thinned so they never touch.

Widths of text are estimated (11 px system-ui: about 6.6 px a character, a little more
for capitals); the browser check in tests/test_dashboard_layout.py measures the real
ones on every page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 640
"""Every chart's viewBox width: drawn once, scaled by CSS to fill its card."""
PALETTE = 8  # series-0 … series-7 in dashboard.css
_CHAR = 6.6
_WIDE = 7.6  # capitals, digits in bold, "W", "M" …

def _char(c: str) -> float:
    return _WIDE if c.isupper() or c in "MWmw%@" else _CHAR


def text_width(text: str) -> float:
    """The estimated width of `text` at the charts' 11 px font."""
    return sum(map(_char, text))


def fit(text: str, room: float) -> str:
    """`text`, cut to fit `room` px with a trailing "…" when it is too long."""
    if text_width(text) <= room:
        return text
    used = _char("…")
    for i, c in enumerate(text):
        used += _char(c)
        if used > room:
            return text[:i] + "…"
    return text


def label(text: str, room: float, x: float, y: float, *, anchor: str = "start",
          css: str = "axis") -> str:
    """A <text> cut to `room` px; a cut one keeps the whole text as its hover title."""
    shown = fit(text, room)
    title = f"<title>{escape(text)}</title>" if shown != text else ""
    return (f'<text class="{css}" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">'
            f'{title}{escape(shown)}</text>')


def compact(value: float) -> str:
    """A tick value, short: 950, 1.5k, 12k, 3.2M; fractions with up to two decimals."""
    size = abs(value)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if size >= limit:
            return f"{value / limit:.1f}".rstrip("0").rstrip(".") + suffix
    if float(value).is_integer():
        return f"{value:.0f}"
    return f"{value:.2f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class Unit:
    """How a chart writes its values: counts, money in a currency, or proportions as %."""

    currency: str = ""
    percent: bool = False

    def tick(self, value: float) -> str:
        """A short axis label: "1.5k", "1.5k EUR", "2.5%"."""
        if self.percent:
            return f"{value * 100:.2f}".rstrip("0").rstrip(".") + "%"
        return f"{compact(value)} {self.currency}".strip()

    def full(self, value: float) -> str:
        """A value in full, for hover titles and value labels: "1,234.50 EUR", "2.25%"."""
        if self.percent:
            return f"{value * 100:.2f}%"
        return f"{value_text(value)} {self.currency}".strip()


COUNT = Unit()
PERCENT = Unit(percent=True)


def money(currency: str) -> Unit:
    """Amounts in the shop's currency (a three-letter code; bare numbers when unknown)."""
    return Unit(currency=currency)


def value_text(value: float) -> str:
    """A value in full, for titles and value labels: 1,234 or 1,234.50."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def nice_ticks(top: float, count: int = 4) -> list[float]:
    """0 and round steps (1, 2, 2.5, 5 × 10^n) up to the first at or above `top`."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    ticks = [0.0]
    while ticks[-1] < top - 1e-12 * top:
        ticks.append(round(ticks[-1] + step, 12))
    return ticks


@dataclass(frozen=True)
class YAxis:
    """A vertical value axis: its ticks, where the plot starts on the left, its scale."""

    ticks: list[float]
    labels: list[str]
    left: float
    top_y: float
    plot_h: float

    @classmethod
    def make(cls, top: float, unit: Unit, *, top_y: float, plot_h: float) -> YAxis:
        """Ticks up to `top`; the plot starts right of the widest tick label."""
        ticks = nice_ticks(top)
        labels = [unit.tick(t) for t in ticks]
        left = max(40.0, 14 + max(text_width(t) for t in labels))
        return cls(ticks, labels, left, top_y, plot_h)

    @property
    def top(self) -> float:
        """The value at the top of the plot (the highest tick)."""
        return self.ticks[-1]

    def y(self, value: float) -> float:
        """Where `value` sits."""
        return self.top_y + self.plot_h - value / self.top * self.plot_h

    def draw(self, right: float) -> list[str]:
        """Tick labels and light grid lines across to `right`, and the base line."""
        parts = []
        for tick, text in zip(self.ticks, self.labels, strict=True):
            y = self.y(tick)
            css = "axis" if tick == 0 else "grid"
            parts.append(f'<line class="{css}" x1="{self.left:.1f}" y1="{y:.1f}" '
                         f'x2="{right:.1f}" y2="{y:.1f}"></line>')
            parts.append(f'<text class="axis tick" x="{self.left - 6:.1f}" y="{y + 4:.1f}" '
                         f'text-anchor="end">{escape(text)}</text>')
        return parts


def legend(series: Sequence[str], x: float, y: float, right: float) -> tuple[list[str], float]:
    """Swatches and names, wrapping onto more rows; (markup, y below the last row)."""
    parts: list[str] = []
    cx, cy = x, y
    room = right - x
    for i, name in enumerate(series):
        shown = fit(name, room - 14)
        w = 14 + text_width(shown) + 16
        if cx > x and cx + w > right:
            cx, cy = x, cy + 16
        title = f"<title>{escape(name)}</title>" if shown != name else ""
        parts.append(
            f'<rect class="legend series-{i % PALETTE}" x="{cx:.1f}" y="{cy - 9:.1f}" '
            f'width="10" height="10"></rect><text x="{cx + 14:.1f}" y="{cy:.1f}" '
            f'class="legend-label">{title}{escape(shown)}</text>')
        cx += w
    return parts, cy + 10


def x_labels(names: Sequence[str], centres: Sequence[float], y: float, room: float,
             width: float, *, categories: bool = False) -> list[str]:
    """Labels under columns, every k-th when they would touch, each cut to its room and
    moved in from the chart's edges (0 … `width`) so none is cut off there.

    Days (the default) are thinned to whole labels; `categories` (channels, journeys)
    keep a label each, cut to their room, while there are 40 units a label."""
    if not names:
        return []
    widest = max(text_width(n) for n in names)
    spacing = (centres[1] - centres[0]) if len(centres) > 1 else room
    need = 40.0 if categories else min(widest, 90) + 8
    every = max(1, math.ceil(need / max(spacing, 1e-9)))
    parts = []
    for i, (name, x) in enumerate(zip(names, centres, strict=True)):
        if i % every == 0:
            shown = fit(name, min(spacing * every - 8, width - 4))
            half = text_width(shown) / 2
            x = min(max(x, 2 + half), width - 2 - half)
            title = f"<title>{escape(name)}</title>" if shown != name else ""
            parts.append(f'<text class="axis" x="{x:.1f}" y="{y:.1f}" text-anchor="middle">'
                         f'{title}{escape(shown)}</text>')
    return parts


def svg(height: float, title: str, body: list[str], css: str, *,
        width: float = WIDTH) -> Markup:
    """The chart element: a viewBox the page scales to its card, an accessible name."""
    return Markup(
        f'<svg class="chart {css}" role="img" aria-label="{escape(title)}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" preserveAspectRatio="xMinYMin meet" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        + "".join(body) + "</svg>"
    )
