"""The dashboard's journey files and flow diagrams: every step of the file drawn (steps,
branches, waits, splits) with people at and through it, versions, validation problems
of a wrong file, sign-in required."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from dashboard_util import assert_signed_out, html_of, journey_app, page_data, signed_in

FLOW = """\
    trigger: {event: Signed Up}
    steps:
      - id: hello
        send: welcome
        channel: email
      - id: pause
        wait: 1d
      - id: vip
        if: {trait: vip, eq: true}
        then: [{send: vip_offer, channel: email}]
        else:
          - split:
              holdout: 10
              arms:
                - {name: a, steps: [{send: reminder, channel: email}]}
                - {name: b, steps: []}
      - id: bought
        wait_for: {event: Order Completed, timeout: 2d}
        on_timeout: [{exit: no order}]
    """
STEP_IDS = ["hello", "pause", "vip", "vip.then.1", "vip.else.1", "vip.else.1.a.1", "bought",
            "bought.timeout.1"]


def drawn(html: str) -> dict[str, dict[str, int]]:
    """{step: {"at", "through"}} as the SVG carries them."""
    return {m[0]: {"at": int(m[2]), "through": int(m[3])} for m in re.findall(
        r'<g class="flow-step kind-[a-z_]+" data-step="([^"]+)" data-kind="([^"]+)" '
        r'data-at="(\d+)" data-through="(\d+)">', html)}


def inside_viewbox(html: str) -> None:
    """Every box and text of the diagram lies inside the SVG's viewBox (translations
    added up independently of the drawing code)."""
    svg = html.split('<svg class="chart flow"')[1].split("</svg>")[0]
    w, h = (float(v) for v in re.search(r'viewBox="0 0 (\S+) (\S+)"', svg).groups())  # type: ignore[union-attr]
    for group in re.findall(r'<g transform="translate\(([\d.]+),([\d.]+)\)">(.*?)</g>'
                            r'(?=<g transform|$)', svg):
        dx, dy = float(group[0]), float(group[1])
        for x, y in re.findall(r'<text x="([\d.]+)" y="([\d.]+)"', group[2]):
            assert 0 <= dx + float(x) <= w and 0 <= dy + float(y) <= h
        for x, y, rw, rh in re.findall(r'<rect class="flow-[a-z]+" x="([\d.]+)" y="([\d.]+)" '
                                       r'width="([\d.]+)" height="([\d.]+)"', group[2]):
            assert dx + float(x) + float(rw) <= w + 0.01 and dy + float(y) + float(rh) <= h + 0.01


def test_flow_pages_need_a_session(tmp_path: Path) -> None:
    with journey_app(tmp_path, {"onboarding": FLOW}) as (world, env):
        world.person("u1")
        world.track("u1", "Signed Up")
        assert_signed_out(env, ["/dashboard/journeys/files",
                                "/dashboard/journeys/onboarding/flow"], ["u1@example.com"])


def test_the_diagram_draws_every_step_with_people_at_and_through(tmp_path: Path) -> None:
    with journey_app(tmp_path, {"onboarding": FLOW}) as (world, env):
        for i in range(3):
            world.person(f"u{i}", vip=i == 0)
            world.track(f"u{i}", "Signed Up")
        world.clock.advance(60)
        signed_in(env)
        html = html_of(env, "/dashboard/journeys/onboarding/flow")
        steps = drawn(html)
        assert sorted(steps) == sorted(STEP_IDS)
        # All three sent `welcome` and wait at `pause`.
        assert steps["hello"] == {"at": 0, "through": 3}
        assert steps["pause"] == {"at": 3, "through": 3}
        assert steps["vip"]["through"] == 0
        assert [s["id"] for s in page_data(html)["steps"]] == list(STEP_IDS)
        for label in (">then<", ">else<", ">a<", ">b<", ">holdout<", ">timeout<", ">event<"):
            assert label in html
        assert "send welcome via email" in html and "on Signed Up" in html
        inside_viewbox(html)
        assert page_data(html)["drawnFrom"] == "file"
        assert page_data(html)["versions"] == [1]
        world.advance(86_400 + 60)
        signed_in(env)                    # a session lasts 12 hours
        steps = drawn(html_of(env, "/dashboard/journeys/onboarding/flow"))
        assert steps["pause"]["at"] == 0 and steps["bought"]["at"] == 3
        assert steps["vip"]["through"] == 3 and steps["vip.then.1"]["through"] == 1
        html_of(env, "/dashboard/journeys/nope/flow", 404)


def test_a_wrong_file_shows_its_problems_beside_the_running_version(tmp_path: Path) -> None:
    with journey_app(tmp_path, {"onboarding": FLOW}) as (world, env):
        signed_in(env)
        world.write("onboarding", FLOW.replace("wait: 1d", "wait: soon"))
        world.write("broken", "trigger: {event: X}\nsteps:\n  - sned: hi\n")
        html = html_of(env, "/dashboard/journeys/onboarding/flow")
        data = page_data(html)
        assert data["drawnFrom"] == "stored" and len(data["problems"]) == 1
        assert "onboarding.yaml:7" in data["problems"][0]
        assert "The file is wrong" in html and sorted(drawn(html)) == sorted(STEP_IDS)
        files = page_data(html_of(env, "/dashboard/journeys/files"))["files"]
        assert {f["name"]: f["problems"] > 0 for f in files} == {"broken": True,
                                                                 "onboarding": True}
        html = html_of(env, "/dashboard/journeys/broken/flow")
        assert page_data(html)["drawnFrom"] is None
        assert "broken.yaml:3: steps[0]: a step needs" in html


def test_versions_are_listed(tmp_path: Any) -> None:
    with journey_app(tmp_path, {"onboarding": FLOW}) as (world, env):
        world.write("onboarding", FLOW.replace("wait: 1d", "wait: 2d"))
        world.sync()
        signed_in(env)
        html = html_of(env, "/dashboard/journeys/onboarding/flow")
        assert page_data(html)["versions"] == [1, 2]
        assert re.search(r'data-version="2">.*?current', html)
