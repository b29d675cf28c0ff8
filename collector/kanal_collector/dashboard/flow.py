"""A journey drawn as a flow diagram: inline SVG built on the server from the journey's
compiled step tree (journeys/tree.py).

Steps are boxes top to bottom; a step with branches (if/then/else, a split's arms and
holdout, wait_for's event/timeout) fans out into side-by-side columns that join again
before the step after it. Each box names the step (its id from the file and its kind),
says what it does, and carries the number of people at it now and through it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup, escape

from ..journeys.model import Journey, Step
from ..journeys.wording import duration

BOX_W, BOX_H = 210, 58
GAP = 30        # vertical space between boxes (room for a branch label)
COL_GAP = 24    # horizontal space between branch columns
EMPTY_W = 90    # width of a branch with no steps
MARGIN = 12
CHARS = 26      # characters that fit on a line of a box (bold, wide ids like a_b_c)
CHAR_W = 7.6    # the width of one such character, for labels of other widths


@dataclass
class Block:
    """A laid-out piece of the diagram: size, SVG parts relative to its top left, and
    whether a run can go on below it (False after an exit)."""

    width: float
    height: float
    parts: list[tuple[float, float, str]] = field(default_factory=list)
    open_end: bool = True

    def put(self, other: Block, x: float, y: float) -> None:
        """Draw `other` with its top left at (x, y)."""
        for dx, dy, part in other.parts:
            self.parts.append((x + dx, y + dy, part))


def _fit(text: str, chars: int = CHARS) -> str:
    return text if len(text) <= chars else text[:max(1, chars - 1)] + "…"


def _short(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False,
                                                           default=str)


def describe(step: Step) -> str:
    """What a step does, in a few words."""
    spec = step.spec
    if step.kind == "send":
        return f"send {spec.get('message')} via {spec.get('channel', 'preferred')}"
    if step.kind == "split":
        arms = ", ".join(f"{a} {w:g}" for a, w in spec.get("arms", []))
        return f"split {arms}" + (f", holdout {spec['holdout']:g}%" if spec.get("holdout")
                                  else "")
    if step.kind == "wait" and "ms" in spec:
        return f"wait {duration(int(spec['ms']))}"
    if step.kind == "wait_for":
        timeout = spec.get("timeout_ms")
        return f"wait for {spec.get('event')}" + (
            f" up to {duration(int(timeout))}" if timeout else "")
    if step.kind == "if":
        return f"if {_short(spec.get('condition'))}"
    if step.kind == "exit":
        return f"exit: {spec.get('reason')}"
    raw = {k: v for k, v in spec.items() if not k.endswith("_ms")}
    return f"{step.kind} {_short(raw)}" if raw else step.kind


def _text(x: float, y: float, text: str, css: str, anchor: str = "middle") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" class="{css}" text-anchor="{anchor}">'
            f"{escape(text)}</text>")


def _box(step: Step, counts: Mapping[str, Mapping[str, int]]) -> Block:
    at = counts.get("at", {}).get(step.id, 0)
    through = counts.get("through", {}).get(step.id, 0)
    what = describe(step)
    block = Block(BOX_W, BOX_H)
    block.parts.append((0, 0, (
        f'<g class="flow-step kind-{escape(step.kind)}" data-step="{escape(step.id)}" '
        f'data-kind="{escape(step.kind)}" data-at="{at}" data-through="{through}">'
        f'<title>{escape(step.id)} ({escape(step.kind)}): {escape(what)}; {at} at this step '
        f'now, {through} through it</title>'
        f'<rect class="flow-box" x="0" y="0" width="{BOX_W}" height="{BOX_H}" rx="6"></rect>'
        + _text(BOX_W / 2, 16, _fit(f"{step.id} · {step.kind}"), "flow-id")
        + _text(BOX_W / 2, 32, _fit(what), "flow-what")
        + _text(BOX_W / 2, 48, _fit(f"{at:,} at · {through:,} through"), "flow-count")
        + "</g>")))
    return block


def _line(x1: float, y1: float, x2: float, y2: float) -> str:
    if x1 == x2:
        return f'<path class="flow-edge" d="M{x1:.1f},{y1:.1f} V{y2:.1f}"></path>'
    mid = y1 + (y2 - y1) / 2
    return (f'<path class="flow-edge" d="M{x1:.1f},{y1:.1f} V{mid:.1f} H{x2:.1f} '
            f'V{y2:.1f}"></path>')


def _end(label: str) -> Block:
    block = Block(BOX_W * 0.6, 26, open_end=False)
    block.parts.append((0, 0, (
        f'<g class="flow-end"><rect class="flow-terminal" x="0" y="0" width="{BOX_W * 0.6:.0f}" '
        f'height="26" rx="13"></rect>' + _text(BOX_W * 0.3, 17, label, "flow-what")
        + "</g>")))
    return block


def _sequence(journey: Journey, start: str | None, stop: str | None,
              counts: Mapping[str, Mapping[str, int]], seen: set[str]) -> Block:
    """The steps from `start` until `stop` (the step after the branch), stacked."""
    pieces: list[Block] = []
    current = start
    while current is not None and current != stop and current in journey.steps \
            and current not in seen:
        seen.add(current)
        step = journey.steps[current]
        pieces.append(_step_block(journey, step, counts, seen))
        if step.kind == "exit":
            pieces.append(_end("exit"))
            break
        current = step.next
    width = max([p.width for p in pieces], default=EMPTY_W)
    out = Block(width, 0)
    y = 0.0
    for i, piece in enumerate(pieces):
        if i:
            out.parts.append((0, 0, _line(width / 2, y - GAP, width / 2, y)))
        out.put(piece, (width - piece.width) / 2, y)
        y += piece.height + GAP
        out.open_end = piece.open_end
    out.height = max(0.0, y - GAP)
    return out


def _step_block(journey: Journey, step: Step, counts: Mapping[str, Mapping[str, int]],
                seen: set[str]) -> Block:
    box = _box(step, counts)
    columns: list[tuple[str, Block]] = [
        (name, _sequence(journey, first, step.next, counts, seen))
        for name, first in step.branches.items()]
    if step.kind == "split" and step.spec.get("holdout"):
        columns.append(("holdout", _end("leaves (holdout)")))
    if not columns:
        return box
    widths = [max(c.width, EMPTY_W) for _, c in columns]
    inner = sum(widths) + COL_GAP * (len(columns) - 1)
    width = max(BOX_W, inner)
    tallest = max(c.height for _, c in columns)
    top = BOX_H + GAP
    out = Block(width, top + tallest + (GAP if any(c.open_end for _, c in columns) else 0))
    out.put(box, (width - BOX_W) / 2, 0)
    x = (width - inner) / 2
    join_y = top + tallest + GAP
    for (name, column), w in zip(columns, widths, strict=True):
        cx = x + w / 2
        out.parts.append((0, 0, _line(width / 2, BOX_H, cx, top)))
        # The branch's name, cut to the room beside its line (the whole name as a title).
        room = int((w + COL_GAP) / 2 / CHAR_W) - 1
        out.parts.append((0, 0, f'<text x="{cx + 4:.1f}" y="{top - 4:.1f}" '
                               f'class="flow-label" text-anchor="start">'
                               f'<title>{escape(name)}</title>{escape(_fit(name, room))}</text>'))
        out.put(column, x + (w - column.width) / 2, top)
        if column.open_end:
            # Down the column's own lane to below the tallest column, then across to the
            # join: the line never crosses another column's boxes.
            out.parts.append((0, 0, (
                f'<path class="flow-edge" d="M{cx:.1f},{top + column.height:.1f} '
                f'V{join_y - GAP / 2:.1f} H{width / 2:.1f} V{join_y:.1f}"></path>')))
        x += w + COL_GAP
    out.open_end = any(c.open_end for _, c in columns)
    if not out.open_end:
        out.height = top + tallest
    return out


def flow_svg(journey: Journey, counts: Mapping[str, Mapping[str, int]]) -> Markup:
    """The journey as an SVG flow diagram; `counts` = {"at": {step: n}, "through": …}."""
    trigger = ", ".join(str(t.get("event") or t.get("segment") or t.get("schedule") or "")
                        for t in journey.triggers) or "trigger"
    start = Block(BOX_W, 26)
    start.parts.append((0, 0, (
        '<g class="flow-start"><rect class="flow-terminal" x="0" y="0" '
        f'width="{BOX_W}" height="26" rx="13"></rect>'
        + _text(BOX_W / 2, 17, _fit(f"on {trigger}"), "flow-what") + "</g>")))
    body = _sequence(journey, journey.first, None, counts, set())
    width = max(BOX_W, body.width)
    whole = Block(width, 0)
    whole.put(start, (width - BOX_W) / 2, 0)
    whole.parts.append((0, 0, _line(width / 2, 26, width / 2, 26 + GAP)))
    whole.put(body, (width - body.width) / 2, 26 + GAP)
    height = 26 + GAP + body.height
    if body.open_end:
        whole.parts.append((0, 0, _line(width / 2, height, width / 2, height + GAP)))
        done = _end("done")
        whole.put(done, (width - done.width) / 2, height + GAP)
        height += GAP + done.height
    w, h = width + 2 * MARGIN, height + 2 * MARGIN
    label = f"Flow of journey {journey.name}"
    parts = [f'<g transform="translate({x + MARGIN:.1f},{y + MARGIN:.1f})">{p}</g>'
             for x, y, p in whole.parts]
    return Markup(
        f'<svg class="chart flow" role="img" aria-label="{escape(label)}" '
        f'viewBox="0 0 {w:.0f} {h:.0f}" width="{w:.0f}" height="{h:.0f}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(label)}</title>'
        + "".join(parts) + "</svg>")
