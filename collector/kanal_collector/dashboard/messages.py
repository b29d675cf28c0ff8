"""The dashboard's Messages pages: every send with its state (paged, filtered by state,
channel and message), a retry button on in-doubt and failed rows (the code of `kanal
outbox retry`), and previews of a message for one person in each of its languages and
channels (the code of `kanal messages preview`). Registered on the dashboard's blueprint
(routes.py), behind its sign-in and CSRF checks."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from flask import redirect, request
from werkzeug.wrappers import Response

from ..errors import KanalError
from ..messages.catalog import Catalog, messages_dir
from ..messages.errors import DefinitionError
from ..messages.manual import RetryRefused, preview, retry
from ..runtime import get_runtime
from ..store import outbox as store
from .paging import int_arg, text_arg
from .people import current_profile
from .routes import _page, _problem, _when, dashboard_blueprint

PAGE = 50
ACTIONABLE = ("queued", "sending", "failed", "in_doubt")


@dashboard_blueprint.get("/messages")
def messages() -> Response:
    """The outbox, newest first, with filters; in-doubt and failed rows can be retried."""
    conn = get_runtime().db.conn()
    state = text_arg("state")
    if state is not None and state not in store.STATES:
        return _problem(400, "Bad filter", f"state must be one of "
                        f"{', '.join(store.STATES)}, not {state!r}")
    filters = {"state": state, "channel": text_arg("channel"), "message": text_arg("message")}
    before = int_arg("before", None, high=2**62)
    rows, found = store.page(conn, state=state, channel=filters["channel"],
                             message=filters["message"], before=before, limit=PAGE)
    query = {k: v for k, v in filters.items() if v}
    return _page(
        "messages.html", since=None, page="messages", rows=[r.as_json() for r in rows],
        filters=filters, states=store.STATES, before=before, found=found, when=_when,
        totals={s: store.count_state(conn, s) for s in ACTIONABLE},
        next_link="/dashboard/messages?" + urlencode({**query, "before": found.before}),
        first_link="/dashboard/messages" + ("?" + urlencode(query) if query else ""),
        back=request.full_path.rstrip("?"), message=request.args.get("message"),
        data={"rows": [r.id for r in rows], "before": found.before})


@dashboard_blueprint.post("/messages/<int:outbox_id>/retry")
def message_retry(outbox_id: int) -> Response:
    """Queue an in-doubt (or, with failed=1, a failed) row again, as `kanal outbox retry`."""
    runtime = get_runtime()
    back = request.form.get("back") or "/dashboard/messages"
    if not back.startswith("/dashboard/messages") or "//" in back:
        back = "/dashboard/messages"
    try:
        retry(runtime.db.conn(), outbox_id, int(runtime.clock.now() * 1000),
              failed=request.form.get("failed") == "1")
    except RetryRefused as exc:
        return _problem(409, "Not queued again", str(exc))
    joiner = "&" if "?" in back else "?"
    return redirect(back + joiner + "message=" + quote(
        f"Outbox row {outbox_id} is queued again; the dispatcher sends it shortly."),
        code=303)


def _catalog() -> tuple[Catalog | None, list[str]]:
    """The messages of the configured directory, or the problems of its files."""
    path = messages_dir(get_runtime().config)
    try:
        return Catalog.from_directory(path), []
    except DefinitionError as exc:
        return None, [str(p) for p in exc.problems] or [str(exc)]
    except KanalError as exc:
        return None, [str(exc)]


@dashboard_blueprint.get("/messages/preview")
def message_preview() -> Response:
    """A message rendered for one person in every language and channel it has."""
    runtime = get_runtime()
    conn = runtime.db.conn()
    catalog, problems = _catalog()
    names = sorted(catalog.messages) if catalog else []
    person = int_arg("person", None, high=2**62)
    name = text_arg("message")
    previews: list[dict[str, Any]] = []
    error = None
    pid = None if person is None else current_profile(conn, person)
    if person is not None and pid is None:
        error = f"There is no profile {person}."
    elif catalog is not None and name is not None and pid is not None:
        if name not in catalog.messages:
            error = f"There is no message called {name!r}."
        else:
            definition = catalog.get(name)
            kinds = sorted(definition.kinds - {"console"}) or ["console"]
            for language in definition.languages:
                for kind in kinds:
                    try:
                        shown = preview(conn, runtime.config, definition, pid, channel=kind,
                                        language=language,
                                        now_ms=int(runtime.clock.now() * 1000))
                    except (KanalError, ValueError) as exc:
                        previews.append({"language": language, "channel": kind,
                                         "error": str(exc)})
                        continue
                    previews.append({"language": language, "channel": kind,
                                     "rendered": shown.language, "fields": shown.fields(),
                                     "recipient": shown.recipient, "refusal": shown.refusal,
                                     "error": None})
    return _page("message_preview.html", 404 if error else 200, since=None,
                 page="messages", names=names, problems=problems, person=person, pid=pid,
                 name=name, previews=previews, error=error,
                 data={"person": pid, "message": name,
                       "previews": [[p["language"], p["channel"]] for p in previews]})
