"""The dashboard's Audiences page: each ads audience's status, members, what waits,
errors and recent rounds, and a button that asks for a sync now. Registered on the
dashboard's blueprint (routes.py), behind its sign-in and CSRF checks.
"""

from __future__ import annotations

from urllib.parse import quote

from flask import redirect, request
from werkzeug.wrappers import Response

from ..audiences.settings import audience_settings
from ..audiences.status import all_statuses, request_sync, when
from ..runtime import get_runtime
from .routes import _page, _problem, dashboard_blueprint


@dashboard_blueprint.get("/audiences")
def audiences() -> Response:
    """Ads audiences: status, members, what waits, errors, recent rounds; sync now."""
    runtime = get_runtime()
    data = {"audiences": all_statuses(runtime.db.conn(), audience_settings(runtime.config),
                                      runs=5)}
    return _page("audiences.html", data=data, since=None, page="audiences",
                 message=request.args.get("message"), when=when)


@dashboard_blueprint.post("/audiences/<name>/sync")
def audiences_sync(name: str) -> Response:
    """Ask the audience worker to sync one audience now."""
    runtime = get_runtime()
    found = audience_settings(runtime.config).get(name)
    if found is None or not found.enabled:
        return _problem(404, "No such audience", f"There is no enabled audience called "
                        f"{name!r}.")
    request_sync(runtime.db.conn(), name, int(runtime.clock.now() * 1000))
    return redirect("/dashboard/audiences?message=" + quote(
        f"{name}: a sync was asked for; kanal serve starts it within seconds."), code=303)
