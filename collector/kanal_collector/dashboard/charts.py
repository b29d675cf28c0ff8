"""Charts as inline SVG, drawn on the server: no script, no third-party code, offline.

Each function returns markup (`<svg role="img">` with an `aria-label`, a `<title>` per
bar for hover, and `data-value` on every bar so tests can read what was drawn). Colours
come from CSS classes (`series-0` …) in static/dashboard.css. Every chart is drawn
twice, on a viewBox as wide as its card on a wide screen (DESK, or HALF beside another)
and on one as wide as a phone's (PHONE); CSS shows the one that fits and scales it to
fill its card, so its text stays about 11 px. Value axes
have round ticks labelled in the chart's unit (`unit`: counts, money with the shop's
currency, percentages); names that don't fit their room are cut with "…" and keep the
whole name as a hover title.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from markupsafe import Markup, escape

from .axes import (
    COUNT,
    PALETTE,
    PERCENT,
    Unit,
    YAxis,
    label,
    legend,
    money,
    svg,
    text_width,
    x_labels,
)

__all__ = ["COUNT", "PERCENT", "Unit", "empty_chart", "grouped_bars", "horizontal_bars",
           "interval_chart", "money", "rate_lines", "stacked_bars"]


def _day_label(name: str) -> str:
    """"2026-03-01" → "03-01"; any other column name as it is."""
    return name[5:] if len(name) == 10 and name[4] == "-" else name


def empty_chart(title: str) -> Markup:
    """What a chart with nothing to draw shows."""
    return svg(60, title, ['<text x="10" y="35" class="empty">No data in this '
                           'window</text>'], "chart-empty")


def _stacked_bars(width: float, title: str,
                  columns: Sequence[tuple[str, Mapping[str, float]]],
                 *, height: int = 240, unit: Unit = COUNT) -> Markup:
    """Vertical bars, one per column (e.g. a day), stacked by series (e.g. an origin)."""
    series = sorted({s for _, values in columns for s in values})
    totals = [sum(values.values()) for _, values in columns]
    if not columns or max(totals, default=0) <= 0:
        return empty_chart(title)
    right = width - 10
    body, top_y = legend(series, 10, 14, right)
    axis = YAxis.make(max(totals), unit, top_y=top_y + 8, plot_h=height - top_y - 38)
    body += axis.draw(right)
    step = (right - axis.left) / len(columns)
    bar_w = min(max(1.0, step * 0.75), 56.0)  # one column: a bar, not a wall
    centres = []
    for i, (name, values) in enumerate(columns):
        x = axis.left + i * step + (step - bar_w) / 2
        centres.append(x + bar_w / 2)
        y = axis.y(0)
        for s_index, s in enumerate(series):
            value = float(values.get(s, 0) or 0)
            if value <= 0:
                continue
            h = axis.y(0) - axis.y(value)
            y -= h
            body.append(
                f'<rect class="bar series-{s_index % PALETTE}" x="{x:.1f}" y="{y:.1f}" '
                f'width="{bar_w:.1f}" height="{h:.1f}" data-series="{escape(s)}" '
                f'data-column="{escape(name)}" data-value="{value:g}">'
                f'<title>{escape(name)} · {escape(s)}: {escape(unit.full(value))}'
                f'</title></rect>')
    body += x_labels([_day_label(n) for n, _ in columns], centres, height - 10, step,
                     width)
    return svg(height, title, body, "chart-stacked", width=width)


def _horizontal_bars(width: float, title: str, rows: Sequence[tuple[str, float]],
                    *, note: Mapping[str, str] | None = None,
                    unit: Unit = COUNT) -> Markup:
    """One horizontal bar per row (a funnel: one per step), labelled with its value."""
    top = max((float(v) for _, v in rows), default=0.0)
    if not rows or top <= 0:
        return empty_chart(title)
    row_h = 26
    values = [unit.full(float(v)) + (f" ({note[n]})" if note and n in note else "")
              for n, v in rows]
    value_room = min(200.0, 8 + max(text_width(v) for v in values))
    left = min(width * 0.4, 12 + max(text_width(n) for n, _ in rows))
    plot_w = width - left - value_room - 10
    height = 10 + len(rows) * row_h
    body = []
    for i, ((name, value), shown) in enumerate(zip(rows, values, strict=True)):
        y = 6 + i * row_h
        w = max(0.0, float(value) / top * plot_w)
        body.append(label(name, left - 12, left - 8, y + 14, anchor="end"))
        body.append(
            f'<rect class="bar series-0" x="{left:.1f}" y="{y}" width="{w:.1f}" '
            f'height="{row_h - 8}" data-series="{escape(name)}" data-value="{float(value):g}">'
            f'<title>{escape(name)}: {escape(shown)}</title></rect>')
        body.append(label(shown, value_room - 8, left + w + 6, y + 14, css="value"))
    return svg(height, title, body, "chart-hbars", width=width)


def _grouped_bars(width: float, title: str,
                  groups: Sequence[tuple[str, Mapping[str, float]]],
                 series: Sequence[str], *, height: int = 260,
                 unit: Unit = COUNT) -> Markup:
    """Vertical bars grouped by key (e.g. a channel), one bar per series (e.g. a model)."""
    top = max((float(v.get(s, 0) or 0) for _, v in groups for s in series), default=0.0)
    if not groups or not series or top <= 0:
        return empty_chart(title)
    right = width - 10
    body, top_y = legend(series, 10, 14, right)
    axis = YAxis.make(top, unit, top_y=top_y + 8, plot_h=height - top_y - 38)
    body += axis.draw(right)
    group_w = (right - axis.left) / len(groups)
    bar_w = min((group_w - 2 * min(8.0, group_w * 0.15)) / len(series), 48.0)
    pad = (group_w - bar_w * len(series)) / 2
    centres = []
    for g, (name, values) in enumerate(groups):
        x0 = axis.left + g * group_w + pad
        centres.append(x0 + (group_w - 2 * pad) / 2)
        for s_index, s in enumerate(series):
            value = float(values.get(s, 0) or 0)
            h = axis.y(0) - axis.y(value) if value > 0 else 0.0
            body.append(
                f'<rect class="bar series-{s_index % PALETTE}" x="{x0 + s_index * bar_w:.1f}" '
                f'y="{axis.y(0) - h:.1f}" width="{max(bar_w - 1, 0.5):.1f}" height="{h:.1f}" '
                f'data-series="{escape(s)}" data-column="{escape(name)}" '
                f'data-value="{value:g}"><title>{escape(name)} · {escape(s)}: '
                f'{escape(unit.full(value))}</title></rect>')
    body += x_labels([n for n, _ in groups], centres, height - 10, group_w, width,
                     categories=True)
    return svg(height, title, body, "chart-grouped", width=width)


def _interval_chart(width: float, title: str,
                    rows: Sequence[tuple[str, float | None, float | None,
                                                    float | None]]) -> Markup:
    """Confidence intervals of a difference around zero: (name, low, point, high) rows.

    A row without an interval (the control) is drawn as its name only.
    """
    drawn = [(n, lo, pt, hi) for n, lo, pt, hi in rows
             if lo is not None and hi is not None and pt is not None]
    if not drawn:
        return empty_chart(title)
    extent = max(max(abs(lo), abs(hi)) for _, lo, _, hi in drawn) or 0.01
    row_h = 30
    left = min(width * 0.35, 12 + max(text_width(n) for n, *_ in rows))
    right = width - 30
    height = 34 + len(rows) * row_h
    mid = left + (right - left) / 2
    scale = (right - left) / 2 / extent

    def x(value: float) -> float:
        return mid + value * scale

    body = [f'<line class="zero" x1="{mid:.1f}" y1="4" x2="{mid:.1f}" y2="{height - 22}"></line>']
    ends = f"{extent * 100:+.1f} pts"
    halves = (right - left) / 4 > text_width(ends) * 1.5 + 12  # room for ±extent/2 too
    ticks = (-extent, -extent / 2, 0.0, extent / 2, extent) if halves else (
        -extent, 0.0, extent)
    for tick in ticks:
        anchor = "start" if tick == -extent else "end" if tick == extent else "middle"
        text = "0" if tick == 0 else f"{tick * 100:+.1f} pts"
        body.append(f'<text class="axis tick" x="{x(tick):.1f}" y="{height - 8}" '
                    f'text-anchor="{anchor}">{text}</text>')
    for i, (name, lo, pt, hi) in enumerate(rows):
        y = 16 + i * row_h
        body.append(label(name, left - 12, left - 8, y + 4, anchor="end"))
        if lo is None or hi is None or pt is None:
            body.append(f'<text class="note" x="{mid + 6:.1f}" y="{y + 4}">control</text>')
            continue
        w = max(x(hi) - x(lo), 1.0)
        body.append(
            f'<rect class="bar interval series-1" x="{x(lo):.1f}" y="{y - 5}" width="{w:.1f}" '
            f'height="10" data-series="{escape(name)}" data-value="{pt:g}" data-low="{lo:g}" '
            f'data-high="{hi:g}"><title>{escape(name)}: difference {pt * 100:+.2f} pts '
            f'[{lo * 100:+.2f}, {hi * 100:+.2f}]</title></rect>')
        body.append(f'<circle class="point" cx="{x(pt):.1f}" cy="{y}" r="4"></circle>')
    return svg(height, title, body, "chart-interval", width=width)


def _rate_lines(width: float, title: str,
                columns: Sequence[tuple[str, Mapping[str, float | None]]],
               series: Sequence[str], thresholds: Sequence[tuple[str, float]] = (),
               *, height: int = 260) -> Markup:
    """Rates (proportions) per column (a day) as lines, one per series, with dashed
    threshold lines (label, value) across the chart. A missing value (no email sent
    that day) leaves a gap; the scale always shows every threshold."""
    values = [float(v) for _, vals in columns for s in series
              if (v := vals.get(s)) is not None]
    if not columns or not values:
        return empty_chart(title)
    right = width - 20
    body, top_y = legend(series, 10, 14, right)
    axis = YAxis.make(max([*values, *(t for _, t in thresholds)]) * 1.15 or 0.01,
                      PERCENT, top_y=top_y + 8, plot_h=height - top_y - 38)
    body += axis.draw(right)
    left = axis.left
    step = (right - left) / max(1, len(columns) - 1) if len(columns) > 1 else 0.0
    for i, (name, limit) in enumerate(thresholds):
        ty = axis.y(limit)
        body.append(f'<line class="threshold" x1="{left:.1f}" y1="{ty:.1f}" x2="{right}" '
                    f'y2="{ty:.1f}" data-threshold="{limit:g}"><title>{escape(name)}</title>'
                    f'</line>')
        # Labels alternate: above the line on the right, below it on the left, so two
        # limits close together stay readable.
        room = (right - left) / 2 - 8
        lx, ly, anchor = ((right - 2, ty - 4, "end") if i % 2 == 0
                          else (left + 4, ty + 12, "start"))
        body.append(label(name, room, lx, ly, anchor=anchor, css="threshold-label"))
    for s_index, s in enumerate(series):
        segment: list[str] = []
        segments: list[list[str]] = [segment]
        for i, (name, vals) in enumerate(columns):
            raw = vals.get(s)
            x = left + i * step
            if raw is None:
                segment = []
                segments.append(segment)
                continue
            rate = float(raw)
            segment.append(f"{x:.1f},{axis.y(rate):.1f}")
            body.append(
                f'<circle class="dot series-{s_index % PALETTE}" cx="{x:.1f}" '
                f'cy="{axis.y(rate):.1f}" r="2.5" data-series="{escape(s)}" '
                f'data-column="{escape(name)}" data-value="{rate:g}"><title>'
                f'{escape(name)} · {escape(s)}: {rate * 100:.3f}%</title></circle>')
        for points in segments:
            if len(points) > 1:
                body.append(f'<polyline class="line series-{s_index % PALETTE}" '
                            f'points="{" ".join(points)}"></polyline>')
    centres = [left + i * step for i in range(len(columns))]
    body += x_labels([_day_label(n) for n, _ in columns], centres, height - 10,
                     step or right - left, width)
    return svg(height, title, body, "chart-lines", width=width)


# -- the public charts: each drawn twice, for a wide screen and for a phone -------------

DESK = 1100.0
"""The viewBox width of a chart across a wide screen's main column (about 1,100 px)."""
HALF = 540.0
"""... and of one of two charts side by side."""
PHONE = 420.0
"""... and of any chart on a phone (up to 700 px: dashboard.css shows it there)."""


def _both(draw: Callable[[float], Markup], half: bool) -> Markup:
    """The chart drawn for a wide screen and for a phone; CSS shows the one that fits,
    so its text keeps about its size whatever the width (no script, no resizing)."""
    desk = str(draw(HALF if half else DESK))
    phone = str(draw(PHONE))
    if 'class="chart chart-empty' in desk:
        return Markup(desk)
    return Markup(desk.replace('<svg class="chart ', '<svg class="chart for-desk ', 1)
                  + phone.replace('<svg class="chart ', '<svg class="chart for-phone ', 1))


def stacked_bars(title: str, columns: Sequence[tuple[str, Mapping[str, float]]],
                 *, height: int = 240, unit: Unit = COUNT, half: bool = False) -> Markup:
    """Vertical bars, one per column (e.g. a day), stacked by series (e.g. an origin);
    `half` for a chart that shares its row with another."""
    return _both(lambda w: _stacked_bars(w, title, columns, height=height, unit=unit), half)


def horizontal_bars(title: str, rows: Sequence[tuple[str, float]],
                    *, note: Mapping[str, str] | None = None, unit: Unit = COUNT,
                    half: bool = False) -> Markup:
    """One horizontal bar per row (a funnel: one per step), labelled with its value."""
    return _both(lambda w: _horizontal_bars(w, title, rows, note=note, unit=unit), half)


def grouped_bars(title: str, groups: Sequence[tuple[str, Mapping[str, float]]],
                 series: Sequence[str], *, height: int = 260, unit: Unit = COUNT,
                 half: bool = False) -> Markup:
    """Vertical bars grouped by key (e.g. a channel), one bar per series (e.g. a model)."""
    return _both(lambda w: _grouped_bars(w, title, groups, series, height=height,
                                         unit=unit), half)


def interval_chart(title: str, rows: Sequence[tuple[str, float | None, float | None,
                                                    float | None]],
                   *, half: bool = False) -> Markup:
    """Confidence intervals of a difference around zero: (name, low, point, high) rows;
    a row without an interval (the control) is drawn as its name only."""
    return _both(lambda w: _interval_chart(w, title, rows), half)


def rate_lines(title: str, columns: Sequence[tuple[str, Mapping[str, float | None]]],
               series: Sequence[str], thresholds: Sequence[tuple[str, float]] = (),
               *, height: int = 260, half: bool = False) -> Markup:
    """Rates per column (a day) as lines, one per series, with dashed thresholds
    (label, value) across; a missing value leaves a gap."""
    return _both(lambda w: _rate_lines(w, title, columns, series, thresholds,
                                       height=height), half)
