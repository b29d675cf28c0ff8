"""The layout check (layout_check.py) on small pages made to be broken: it must find the
sideways scroll, the overlapping labels and the SVG text outside its viewBox, and must
not complain about a page that is fine (text hidden inside a scroll box included)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from layout_check import problems

from kanal_collector.dashboard import charts

pytestmark = [pytest.mark.browser]

CSS = (Path(charts.__file__).parent / "static" / "dashboard.css").read_text(encoding="utf-8")

FINE = """<!doctype html><html><body style="margin:0;font:15px sans-serif">
<h1>Fine</h1><p>Two lines of text that wrap because the page is narrow enough for
them to wrap onto a second line, and that is fine.</p>
<div style="overflow-x:auto;width:200px"><table><tr><td>a wide table</td>
<td style="white-space:nowrap">that scrolls inside its own box, not the page</td>
<td>more</td></tr></table></div>
<div style="overflow:hidden;height:20px"><p>shown</p><p>hidden under the clip</p></div>
<svg viewBox="0 0 200 40" width="200"><text x="5" y="20">inside</text>
<text x="195" y="20" text-anchor="end">right</text></svg>
</body></html>"""


@pytest.fixture(scope="module")
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 390, "height": 800})
    try:
        yield context.new_page()
    finally:
        context.close()


def test_a_fine_page_has_no_problems(page: Any) -> None:
    page.set_content(FINE)
    assert problems(page) == []


def test_a_page_wider_than_the_viewport(page: Any) -> None:
    page.set_content('<body><div style="width:900px">a very wide row</div></body>')
    assert problems(page) == ["the document is 908px wide in a 390px viewport"]


def test_overlapping_text(page: Any) -> None:
    page.set_content('<body><p>first label</p>'
                     '<p style="margin-top:-1.6em;margin-left:2em">second label</p></body>')
    [problem] = problems(page)
    assert problem == 'p "first label" overlaps p "second label"'


def test_touching_lines_are_not_overlapping(page: Any) -> None:
    page.set_content('<body style="font:15px/1 sans-serif"><div>one</div><div>two</div>'
                     '<span>side</span><span>by side</span></body>')
    assert problems(page) == []


def test_svg_labels_overlapping_and_outside_the_viewbox(page: Any) -> None:
    page.set_content('<body><svg viewBox="0 0 100 40" width="100" aria-label="chart">'
                     '<text x="2" y="20">campaign_one</text>'
                     '<text x="10" y="22">campaign_two</text></svg></body>')
    found = problems(page)
    assert 'text "campaign_one" overlaps text "campaign_two"' in found
    assert any(p.startswith('text "campaign_two" reaches outside its viewBox') and
               p.endswith("in chart") for p in found), found


def test_text_above_the_viewbox(page: Any) -> None:
    page.set_content('<body><svg viewBox="0 0 300 40" width="300"><text x="2" y="4">'
                     'cut at the top</text></svg></body>')
    [problem] = problems(page)
    assert "reaches outside its viewBox" in problem


def test_a_wide_report_table_without_its_scroll_box(page: Any) -> None:
    """The dashboard's CSS: a wide table breaks a phone's page unless a .scroll box
    holds it (as every report table's is)."""
    cells = "".join(f'<td class="n">{n:,}.00 EUR</td>' for n in range(1000, 1012))
    table = f'<table class="report"><tr><td>spring_sale</td>{cells}</tr></table>'
    page.set_content(f"<head><style>{CSS}</style></head><body><main>{table}</main></body>")
    assert problems(page)[0].startswith("the document is ")
    page.set_content(f'<head><style>{CSS}</style></head><body><main><div class="scroll">'
                     f"{table}</div></main></body>")
    assert problems(page) == []


def test_a_chart_for_a_wide_screen_and_one_for_a_phone(page: Any) -> None:
    chart = str(charts.stacked_bars("Events", [(f"2026-01-{d:02d}", {"web": d}) for d in
                                               range(1, 29)]))
    page.set_content(f"<head><style>{CSS}</style></head><body><main><section "
                     f'class="chart-box">{chart}</section></main></body>')
    assert problems(page) == []
    shown = page.eval_on_selector_all("svg.chart", "els => els.filter(e => "
                                      "e.getBoundingClientRect().width > 0).map(e => "
                                      "e.getAttribute('class'))")
    assert shown == ["chart for-phone chart-stacked"]  # a 390 px page


def test_a_legend_in_a_bigger_font_is_cut(page: Any) -> None:
    """Without the dashboard's 11 px chart font the legend's text no longer fits."""
    chart = charts.stacked_bars("Events", [("2026-01-01", {"web": 1})])
    page.set_content(f"<body>{chart}</body>")
    assert any(p.startswith('text.legend-label "web" reaches outside its viewBox')
               for p in problems(page))
