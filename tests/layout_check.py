"""A layout check for pages in headless Chromium: what a reader would call broken.

`problems(page)` lists, for the page as it is drawn now:
- the document scrolls sideways (its width is more than the viewport's);
- two pieces of text overlap: every visible text line (HTML text nodes, one box per
  line) and every SVG <text>, clipped to the scroll boxes around it, against every
  other, with a small tolerance (TOLERANCE px each way);
- an SVG <text> reaches outside its SVG's viewBox (it would be cut off).

`walk(page, base, start)` follows the dashboard's links from `start` and returns the
pages to check: each page once (with `since=90d` where it has a window, the longest
labels), and of many pages under one list (one per journey) the first and the one
with the longest name.

`screenshot(page, name)` keeps a full-page PNG in the artifacts directory:
$KANAL_TEST_ARTIFACTS when set, else a directory under pytest's temporary path.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

TOLERANCE = 2.0

_PROBLEMS_JS = r"""
(tol) => {
  const out = [];
  const root = document.documentElement;
  if (root.scrollWidth > root.clientWidth + 1) {
    out.push(`the document is ${root.scrollWidth}px wide in a ${root.clientWidth}px viewport`);
  }
  // The part of a box a reader can see: cut by every scrolling or clipping box around it.
  const clip = (el, r) => {
    let [l, t, rt, b] = [r.left, r.top, r.right, r.bottom];
    for (let a = el.parentElement; a; a = a.parentElement) {
      if (a instanceof SVGElement) continue;
      const st = getComputedStyle(a);
      const c = a.getBoundingClientRect();
      if (st.overflowX !== "visible") { l = Math.max(l, c.left); rt = Math.min(rt, c.right); }
      if (st.overflowY !== "visible") { t = Math.max(t, c.top); b = Math.min(b, c.bottom); }
    }
    return (rt - l > 0.5 && b - t > 0.5) ? {l, t, r: rt, b} : null;
  };
  const name = (el, text) => {
    const tag = el.tagName.toLowerCase();
    const id = el.id ? "#" + el.id : "";
    const cls = el.getAttribute("class") ? "." + el.getAttribute("class").split(/\s+/)[0] : "";
    return `${tag}${id}${cls} "${text.trim().slice(0, 40)}"`;
  };
  const boxes = [];  // {owner, label, l, t, r, b}
  let owner = 0;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!el || !node.textContent.trim() || el.closest("svg")) continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    owner += 1;
    for (const r of range.getClientRects()) {
      const c = clip(el, r);
      if (c) boxes.push({owner, label: name(el, node.textContent), ...c});
    }
  }
  for (const svg of document.querySelectorAll("svg")) {
    const vb = svg.viewBox && svg.viewBox.baseVal;
    for (const text of svg.querySelectorAll("text")) {
      owner += 1;
      const shown = [...text.childNodes].filter(n => n.nodeType === 3)
        .map(n => n.textContent).join("");
      const c = clip(text, text.getBoundingClientRect());
      if (c) boxes.push({owner, label: name(text, shown), ...c});
      if (vb && vb.width) {
        const bb = text.getBBox();
        if (bb.x < vb.x - 0.5 || bb.y < vb.y - 0.5 || bb.x + bb.width > vb.x + vb.width + 0.5
            || bb.y + bb.height > vb.y + vb.height + 0.5) {
          out.push(`${name(text, shown)} reaches outside its viewBox ` +
                   `(${bb.x.toFixed(1)},${bb.y.toFixed(1)} ${bb.width.toFixed(1)}×` +
                   `${bb.height.toFixed(1)} in 0,0 ${vb.width}×${vb.height}) in ` +
                   `${svg.getAttribute("aria-label") || "an svg"}`);
        }
      }
    }
  }
  boxes.sort((a, b) => a.t - b.t);
  for (let i = 0; i < boxes.length; i++) {
    const a = boxes[i];
    for (let j = i + 1; j < boxes.length && boxes[j].t < a.b - tol; j++) {
      const b = boxes[j];
      if (a.owner === b.owner) continue;
      const w = Math.min(a.r, b.r) - Math.max(a.l, b.l);
      const h = Math.min(a.b, b.b) - Math.max(a.t, b.t);
      if (w > tol && h > tol) out.push(`${a.label} overlaps ${b.label}`);
    }
  }
  return out;
}
"""


def problems(page: Any) -> list[str]:
    """What is broken in the page's layout as drawn now (see the module docstring)."""
    found: list[str] = page.evaluate(_PROBLEMS_JS, TOLERANCE)
    return found


def artifacts_dir(default: Path) -> Path:
    """Where screenshots go: $KANAL_TEST_ARTIFACTS when set, else `default`."""
    import os

    where = Path(os.environ.get("KANAL_TEST_ARTIFACTS") or default)
    where.mkdir(parents=True, exist_ok=True)
    return where


def screenshot(page: Any, where: Path, name: str) -> Path:
    """A full-page PNG of the page, named from `name`."""
    path = where / (re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") + ".png")
    page.screenshot(path=str(path), full_page=True)
    return path


def _canonical(href: str) -> str | None:
    """A dashboard link as the page to check, or None for what isn't a page."""
    parts = urlsplit(href)
    if parts.scheme or parts.netloc or not parts.path.startswith("/dashboard"):
        return None
    if parts.path.startswith(("/dashboard/static", "/dashboard/login", "/dashboard/logout")):
        return None
    query = dict(parse_qsl(parts.query))
    keep = {"since": "90d"} if "since" in query else {}
    return parts.path + ("?" + urlencode(keep) if keep else "")


def walk(page: Any, base: str, start: str = "/dashboard/") -> list[str]:
    """Every dashboard page reachable by links from `start` (see the module docstring)."""
    queue = [start]
    seen: set[str] = {start}
    pages: list[str] = []
    while queue:
        url = queue.pop(0)
        response = page.goto(base + url)
        if response is None or response.status != 200:
            raise AssertionError(f"{url}: {response.status if response else 'no answer'}")
        pages.append(url)
        hrefs: list[str] = page.eval_on_selector_all(
            "a[href]", "els => els.map(e => e.getAttribute('href'))")
        found = [c for h in hrefs if (c := _canonical(h)) is not None]
        # Of many pages under one parent (one per journey), the first and the longest.
        by_parent: dict[str, list[str]] = {}
        for c in dict.fromkeys(found):
            parent = urlsplit(c).path.rsplit("/", 1)[0]
            by_parent.setdefault(c if parent == "/dashboard" else parent, []).append(c)
        for siblings in by_parent.values():
            chosen = siblings if len(siblings) <= 2 else [
                siblings[0], max(siblings, key=lambda s: len(urlsplit(s).path))]
            for c in chosen:
                if urlsplit(c).path not in {urlsplit(s).path for s in seen}:
                    seen.add(c)
                    queue.append(c)
    return pages
