"""Charts as inline SVG, drawn on the server: no script, no third-party code, offline.

Each function returns markup (`<svg role="img">` with an `aria-label`, a `<title>` per
bar for hover, and `data-value` on every bar so tests can read what was drawn). Colours
come from CSS classes (`series-0` …) in static/dashboard.css.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from markupsafe import Markup, escape

_PALETTE = 8  # series-0 … series-7 in dashboard.css


def _num(value: float) -> str:
    """A value as a label: whole numbers without decimals, others with two."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _svg(width: int, height: int, label: str, body: list[str], css: str) -> Markup:
    return Markup(
        f'<svg class="chart {css}" role="img" aria-label="{escape(label)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(label)}</title>'
        + "".join(body) + "</svg>"
    )


def _legend(series: Sequence[str], x: float, y: float) -> list[str]:
    parts = []
    for i, name in enumerate(series):
        parts.append(
            f'<rect class="legend series-{i % _PALETTE}" x="{x + i * 120:.0f}" y="{y - 9}" '
            f'width="10" height="10"></rect><text x="{x + i * 120 + 14:.0f}" y="{y}" '
            f'class="legend-label">{escape(name)}</text>')
    return parts


def empty_chart(label: str) -> Markup:
    """What a chart with nothing to draw shows."""
    return _svg(600, 60, label, ['<text x="10" y="35" class="empty">No data in this '
                                 'window</text>'], "chart-empty")


def stacked_bars(label: str, columns: Sequence[tuple[str, Mapping[str, float]]],
                 *, height: int = 220) -> Markup:
    """Vertical bars, one per column (e.g. a day), stacked by series (e.g. an origin)."""
    series = sorted({s for _, values in columns for s in values})
    totals = [sum(values.values()) for _, values in columns]
    if not columns or max(totals, default=0) <= 0:
        return empty_chart(label)
    top = max(totals)
    left, plot_h = 50, height - 60
    width = max(600, left + 10 + len(columns) * 22)
    step = (width - left - 10) / len(columns)
    bar_w = max(2.0, step * 0.7)
    body = [f'<text class="axis" x="{left - 6}" y="{30 + 4}" text-anchor="end">{_num(top)}</text>',
            f'<text class="axis" x="{left - 6}" y="{30 + plot_h}" text-anchor="end">0</text>',
            f'<line class="axis" x1="{left}" y1="{30 + plot_h}" x2="{width - 10}" '
            f'y2="{30 + plot_h}"></line>']
    body += _legend(series, left, 14)
    for i, (name, values) in enumerate(columns):
        x = left + i * step + (step - bar_w) / 2
        y = 30.0 + plot_h
        for s_index, s in enumerate(series):
            value = float(values.get(s, 0) or 0)
            if value <= 0:
                continue
            h = value / top * plot_h
            y -= h
            body.append(
                f'<rect class="bar series-{s_index % _PALETTE}" x="{x:.1f}" y="{y:.1f}" '
                f'width="{bar_w:.1f}" height="{h:.1f}" data-series="{escape(s)}" '
                f'data-column="{escape(name)}" data-value="{value:g}">'
                f'<title>{escape(name)} · {escape(s)}: {_num(value)}</title></rect>')
        if len(columns) <= 16 or i % max(1, len(columns) // 8) == 0:
            body.append(f'<text class="axis" x="{x + bar_w / 2:.1f}" y="{height - 8}" '
                        f'text-anchor="middle">{escape(name[5:] if len(name) == 10 else name)}'
                        '</text>')
    return _svg(int(width), height, label, body, "chart-stacked")


def horizontal_bars(label: str, rows: Sequence[tuple[str, float]],
                    *, note: Mapping[str, str] | None = None) -> Markup:
    """One horizontal bar per row (a funnel: one per step), labelled with its value."""
    top = max((float(v) for _, v in rows), default=0.0)
    if not rows or top <= 0:
        return empty_chart(label)
    left, row_h, width = 190, 26, 640
    height = 10 + len(rows) * row_h
    body = []
    for i, (name, value) in enumerate(rows):
        y = 6 + i * row_h
        w = max(0.0, float(value) / top * (width - left - 90))
        extra = f" ({note[name]})" if note and name in note else ""
        body.append(f'<text class="axis" x="{left - 8}" y="{y + 15}" text-anchor="end">'
                    f'{escape(name[:28])}</text>')
        body.append(
            f'<rect class="bar series-0" x="{left}" y="{y}" width="{w:.1f}" height="{row_h - 8}" '
            f'data-series="{escape(name)}" data-value="{float(value):g}">'
            f'<title>{escape(name)}: {_num(float(value))}{escape(extra)}</title></rect>')
        body.append(f'<text class="value" x="{left + w + 6:.1f}" y="{y + 15}">'
                    f'{_num(float(value))}{escape(extra)}</text>')
    return _svg(width, height, label, body, "chart-hbars")


def grouped_bars(label: str, groups: Sequence[tuple[str, Mapping[str, float]]],
                 series: Sequence[str], *, height: int = 240) -> Markup:
    """Vertical bars grouped by key (e.g. a channel), one bar per series (e.g. a model)."""
    top = max((float(v.get(s, 0) or 0) for _, v in groups for s in series), default=0.0)
    if not groups or not series or top <= 0:
        return empty_chart(label)
    left, plot_h = 60, height - 70
    group_w = max(24 * len(series) + 16, 60)
    width = max(640, left + 10 + len(groups) * group_w)
    bar_w = (group_w - 16) / len(series)
    body = [f'<text class="axis" x="{left - 6}" y="{34}" text-anchor="end">{_num(top)}</text>',
            f'<line class="axis" x1="{left}" y1="{30 + plot_h}" x2="{width - 10}" '
            f'y2="{30 + plot_h}"></line>']
    body += _legend(series, left, 14)
    for g, (name, values) in enumerate(groups):
        x0 = left + g * group_w + 8
        for s_index, s in enumerate(series):
            value = float(values.get(s, 0) or 0)
            h = value / top * plot_h if value > 0 else 0.0
            body.append(
                f'<rect class="bar series-{s_index % _PALETTE}" x="{x0 + s_index * bar_w:.1f}" '
                f'y="{30 + plot_h - h:.1f}" width="{max(bar_w - 2, 1):.1f}" height="{h:.1f}" '
                f'data-series="{escape(s)}" data-column="{escape(name)}" '
                f'data-value="{value:g}"><title>{escape(name)} · {escape(s)}: '
                f'{_num(value)}</title></rect>')
        body.append(f'<text class="axis" x="{x0 + (group_w - 16) / 2:.1f}" y="{height - 20}" '
                    f'text-anchor="middle">{escape(name[:14])}</text>')
    return _svg(int(width), height, label, body, "chart-grouped")


def interval_chart(label: str, rows: Sequence[tuple[str, float | None, float | None,
                                                    float | None]]) -> Markup:
    """Confidence intervals of a difference around zero: (name, low, point, high) rows.

    A row without an interval (the control) is drawn as its name only.
    """
    drawn = [(n, lo, pt, hi) for n, lo, pt, hi in rows
             if lo is not None and hi is not None and pt is not None]
    if not drawn:
        return empty_chart(label)
    extent = max(max(abs(lo), abs(hi)) for _, lo, _, hi in drawn) or 0.01
    left, width, row_h = 150, 640, 30
    height = 30 + len(rows) * row_h
    mid = left + (width - left - 20) / 2
    scale = (width - left - 20) / 2 / extent

    def x(value: float) -> float:
        return mid + value * scale

    body = [f'<line class="zero" x1="{mid:.1f}" y1="4" x2="{mid:.1f}" y2="{height - 20}"></line>',
            f'<text class="axis" x="{mid:.1f}" y="{height - 6}" text-anchor="middle">0</text>',
            f'<text class="axis" x="{left}" y="{height - 6}">{-extent * 100:+.1f} pts</text>',
            f'<text class="axis" x="{width - 20}" y="{height - 6}" text-anchor="end">'
            f'{extent * 100:+.1f} pts</text>']
    for i, (name, lo, pt, hi) in enumerate(rows):
        y = 14 + i * row_h
        body.append(f'<text class="axis" x="{left - 8}" y="{y + 4}" text-anchor="end">'
                    f'{escape(name[:22])}</text>')
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
    return _svg(width, height, label, body, "chart-interval")


def rate_lines(label: str, columns: Sequence[tuple[str, Mapping[str, float | None]]],
               series: Sequence[str], thresholds: Sequence[tuple[str, float]] = (),
               *, height: int = 240) -> Markup:
    """Rates (proportions) per column (a day) as lines, one per series, with dashed
    threshold lines (label, value) across the chart. A missing value (no email sent
    that day) leaves a gap; the scale always shows every threshold."""
    values = [float(v) for _, vals in columns for s in series
              if (v := vals.get(s)) is not None]
    if not columns or not values:
        return empty_chart(label)
    top = max([*values, *(t for _, t in thresholds)]) * 1.15 or 0.01
    left, plot_h, top_y = 60, height - 70, 30
    width = max(640, left + 20 + len(columns) * 18)
    step = (width - left - 20) / max(1, len(columns) - 1) if len(columns) > 1 else 0.0

    def y(value: float) -> float:
        return top_y + plot_h - value / top * plot_h

    body = [f'<text class="axis" x="{left - 6}" y="{top_y + 4}" text-anchor="end">'
            f'{top * 100:.2f}%</text>',
            f'<text class="axis" x="{left - 6}" y="{top_y + plot_h}" text-anchor="end">0%</text>',
            f'<line class="axis" x1="{left}" y1="{top_y + plot_h}" x2="{width - 20}" '
            f'y2="{top_y + plot_h}"></line>']
    body += _legend(series, left, 14)
    for i, (name, limit) in enumerate(thresholds):
        ty = y(limit)
        body.append(f'<line class="threshold" x1="{left}" y1="{ty:.1f}" x2="{width - 20}" '
                    f'y2="{ty:.1f}" data-threshold="{limit:g}"><title>{escape(name)}</title>'
                    f'</line>')
        # Labels alternate: above the line on the right, below it on the left, so two
        # limits close together stay readable.
        lx, ly, anchor = ((width - 22, ty - 4, "end") if i % 2 == 0
                          else (left + 4, ty + 12, "start"))
        body.append(f'<text class="threshold-label" x="{lx}" y="{ly:.1f}" '
                    f'text-anchor="{anchor}">{escape(name)}</text>')
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
            segment.append(f"{x:.1f},{y(rate):.1f}")
            body.append(
                f'<circle class="dot series-{s_index % _PALETTE}" cx="{x:.1f}" '
                f'cy="{y(rate):.1f}" r="2.5" data-series="{escape(s)}" '
                f'data-column="{escape(name)}" data-value="{rate:g}"><title>'
                f'{escape(name)} · {escape(s)}: {rate * 100:.3f}%</title></circle>')
        for points in segments:
            if len(points) > 1:
                body.append(f'<polyline class="line series-{s_index % _PALETTE}" '
                            f'points="{" ".join(points)}"></polyline>')
    for i, (name, _) in enumerate(columns):
        if len(columns) <= 16 or i % max(1, len(columns) // 8) == 0:
            body.append(f'<text class="axis" x="{left + i * step:.1f}" y="{height - 8}" '
                        f'text-anchor="middle">'
                        f'{escape(name[5:] if len(name) == 10 else name)}</text>')
    return _svg(int(width), height, label, body, "chart-lines")
