"""The dashboard's Settings page: sources and keys (create a source; create a key, shown
once; revoke a key) and the channels, destinations and plugins with their check results
(setup_checks.run_checks, what `kanal plugins --check` runs). Registered on the
dashboard's blueprint (routes.py), behind its sign-in and CSRF checks."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from flask import redirect, request
from werkzeug.wrappers import Response

from ..audiences.plugins import destination_summary
from ..channels.plugins import plugin_summary
from ..errors import KanalError
from ..runtime import get_runtime
from ..setup_checks import run_checks
from ..store import keys as keystore
from .routes import _page, _when, dashboard_blueprint


def _settings(status: int = 200, *, new_key: dict[str, str] | None = None,
              message: str | None = None, error: str | None = None) -> Response:
    runtime = get_runtime()
    conn = runtime.db.conn()
    problem = None
    summary: dict[str, Any] = {"plugins": [], "channels": [], "unknown_configured": []}
    try:
        summary = plugin_summary(runtime.config)
        summary["destinations"] = destination_summary(runtime.config)
        checks = run_checks(runtime.config)
    except KanalError as exc:
        problem, checks = str(exc), []
    keys = keystore.list_keys(conn)
    return _page(
        "settings.html", status, since=None, page="settings", when=_when,
        sources=keystore.list_sources(conn), keys=keys, kinds=keystore.KINDS,
        summary=summary, checks=checks, problem=problem, new_key=new_key,
        message=message or request.args.get("message"), error=error,
        data={"keys": [{"prefix": k.prefix, "kind": k.kind, "revoked": k.revoked}
                       for k in keys],
              "checks": [{"what": c.what, "name": c.name, "ok": c.ok} for c in checks]})


@dashboard_blueprint.get("/settings")
def settings() -> Response:
    """Sources, keys, channels, destinations and plugins with their check results."""
    return _settings()


@dashboard_blueprint.post("/settings/sources")
def settings_source() -> Response:
    """Add a source (as `kanal sources create`)."""
    runtime = get_runtime()
    name = (request.form.get("name") or "").strip()
    try:
        keystore.create_source(runtime.db.conn(), name, int(runtime.clock.now() * 1000))
    except ValueError as exc:
        return _settings(400, error=str(exc))
    return redirect("/dashboard/settings?message=" + quote(f"Created source {name!r}."),
                    code=303)


@dashboard_blueprint.post("/settings/keys")
def settings_key() -> Response:
    """Create a key (as `kanal keys create`); the page shows it this once."""
    runtime = get_runtime()
    kind = request.form.get("kind") or ""
    source = (request.form.get("source") or "").strip() or None
    name = (request.form.get("name") or "").strip()[:200] or None
    try:
        if kind not in keystore.KINDS:
            raise ValueError(f"kind must be one of {', '.join(keystore.KINDS)}, not {kind!r}")
        if kind != "admin" and source is not None \
                and keystore.source_id(runtime.db.conn(), source) is None:
            raise ValueError(f"there is no source called {source!r}")
        key = keystore.create_key(runtime.db.conn(), kind, int(runtime.clock.now() * 1000),
                                  source=None if kind == "admin" else source, name=name)
    except ValueError as exc:
        return _settings(400, error=str(exc))
    where = "" if kind == "admin" else f" for source {source or 'default'!r}"
    return _settings(201, new_key={"kind": kind, "key": key, "where": where})


@dashboard_blueprint.post("/settings/keys/revoke")
def settings_revoke() -> Response:
    """Revoke a key by its prefix (as `kanal keys revoke`)."""
    runtime = get_runtime()
    prefix = (request.form.get("prefix") or "").strip()
    try:
        if not prefix:
            raise ValueError("which key? (its prefix is missing)")
        info = keystore.revoke_key(runtime.db.conn(), prefix, int(runtime.clock.now() * 1000))
    except ValueError as exc:
        return _settings(400, error=str(exc))
    return redirect("/dashboard/settings?message=" + quote(
        f"Revoked {info.kind} key {info.prefix}…; it stops working within seconds."),
        code=303)
