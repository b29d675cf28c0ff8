"""The dashboard's journey files and flow diagrams: every file of the journeys directory
with its validation problems (what `kanal journeys validate` reports), and each journey
drawn from its file (or, when the file is wrong or gone, from its current stored
version) with the people at each step now and through it in the window, and its stored
versions. Read-only: the files stay the source. Registered on the dashboard's blueprint
(routes.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from werkzeug.wrappers import Response

from ..errors import KanalError
from ..journeys.definition import journey_files
from ..journeys.model import Journey
from ..journeys.validation import validate
from ..journeys.versions import Versions
from ..reports import views
from ..reports.funnels import tree
from ..runtime import get_runtime
from ..store import journeys as store
from ..yamlfile import Problem
from .flow import describe, flow_svg
from .routes import _page, _problem, _when, _window, dashboard_blueprint


def _checked() -> tuple[dict[str, Journey], list[Problem], str | None]:
    """The valid journey files, the problems of the others, or why nothing was read."""
    try:
        journeys, problems = validate(get_runtime().config)
    except KanalError as exc:
        return {}, [], str(exc)
    return journeys, problems, None


def _stem(problem: Problem) -> str:
    return Path(problem.source).stem


@dashboard_blueprint.get("/journeys/files")
def journey_files_page() -> Response:
    """Every journey file: valid (with its steps) or its problems."""
    config = get_runtime().config
    journeys, problems, failure = _checked()
    by_source = {j.source: j for j in journeys.values()}
    rows: list[dict[str, Any]] = []
    for path in journey_files(config.journeys_dir):
        journey = by_source.get(str(path))
        rows.append({"path": str(path), "name": journey.name if journey else path.stem,
                     "steps": len(journey.steps) if journey else None,
                     "problems": [str(p) for p in problems if p.source == str(path)]})
    return _page("journey_files.html", since=None, page="journeys", rows=rows,
                 failure=failure, directory=str(config.journeys_dir),
                 data={"files": [{"name": r["name"], "problems": len(r["problems"])}
                                 for r in rows]})


@dashboard_blueprint.get("/journeys/<name>/flow")
def journey_flow(name: str) -> Response:
    """One journey as a flow diagram with people at and through each step."""
    since_ms, until_ms, since = _window()
    runtime = get_runtime()
    conn = runtime.db.conn()
    journeys, problems, failure = _checked()
    mine = [str(p) for p in problems if _stem(p) == name]
    current = {n: v for n, v, _ in store.current(conn)}
    versions = store.versions(conn, name)
    drawn: Journey | None = journeys.get(name)
    drawn_from = "file"
    if drawn is None and name in current:
        drawn, drawn_from = Versions(conn, name).get(current[name]), "stored"
    if drawn is None and not mine and not versions:
        return _problem(404, "No such journey", f"There is no journey called {name!r}.")
    through: dict[str, int] = {}
    if name in current:
        try:
            funnel = views.journey_view(conn, name, since_ms=since_ms, until_ms=until_ms)
            through = {str(s["step"]): int(s["reached"]) for s in funnel["steps"]}
        except LookupError:
            pass
    at = store.active_steps(conn, name)
    counts = {"at": at, "through": through}
    steps = []
    if drawn is not None:
        ordered = [drawn.steps[i] for i in tree(drawn).order if i in drawn.steps]
        steps = [{"id": s.id, "kind": s.kind, "what": describe(s), "at": at.get(s.id, 0),
                  "through": through.get(s.id, 0)} for s in ordered]
    return _page(
        "journey_flow.html", since=since, page="journeys", name=name, when=_when,
        chart=flow_svg(drawn, counts) if drawn is not None else None, drawn_from=drawn_from,
        problems=mine, failure=failure, versions=versions, current=current.get(name),
        steps=steps, source=drawn.source if drawn is not None and drawn_from == "file"
        else None,
        data={"journey": name, "drawnFrom": drawn_from if drawn is not None else None,
              "steps": steps, "problems": mine,
              "versions": [v["version"] for v in versions]})
