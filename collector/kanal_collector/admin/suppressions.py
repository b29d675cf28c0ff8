"""Admin routes of the email suppression list.

    GET    /api/suppressions?after=&limit=&reason=   entries in address order (a page)
    GET    /api/suppressions/<address>               one entry (404 when not listed)
    PUT    /api/suppressions/<address>               body {"reason": "manual", "detail": …}
    DELETE /api/suppressions/<address>               take it off the list
"""

from __future__ import annotations

from flask import Response, jsonify, request

from ..deliverability import suppression
from ..errors import BadRequest, NotFound
from ..runtime import get_runtime
from ..store import deliverability as store
from .routes import _int_arg, admin_blueprint


@admin_blueprint.get("/suppressions")
def suppressions() -> Response:
    """A page of the list; `next` is the `after` of the next page (None at the end)."""
    limit = _int_arg("limit", 100, low=1, high=10_000) or 100
    conn = get_runtime().db.conn()
    rows = store.suppressions(conn, after=request.args.get("after", ""), limit=limit,
                              reason=request.args.get("reason") or None)
    return jsonify(suppressions=[s.as_json() for s in rows],
                   counts=store.count_suppressions(conn),
                   next=rows[-1].address if len(rows) == limit else None)


def _address(address: str) -> str:
    try:
        return suppression.clean_address(address)
    except ValueError as exc:
        raise BadRequest(str(exc), code="invalid_parameter") from None


@admin_blueprint.get("/suppressions/<path:address>")
def suppression_get(address: str) -> Response:
    """One entry."""
    entry = store.suppression(get_runtime().db.conn(), _address(address))
    if entry is None:
        raise NotFound(f"{address} is not on the suppression list")
    return jsonify(entry.as_json())


@admin_blueprint.put("/suppressions/<path:address>")
def suppression_put(address: str) -> Response:
    """Put an address on the list (or change its reason)."""
    body = request.get_json(silent=True)
    body = body if isinstance(body, dict) else {}
    detail = body.get("detail")
    if detail is not None and not isinstance(detail, str):
        raise BadRequest("detail must be a string", code="invalid_parameter")
    runtime = get_runtime()
    clean = _address(address)
    try:
        new = suppression.add(runtime.db.conn(), clean, reason=str(body.get("reason")
                                                                  or "manual"),
                              detail=detail, source="api",
                              now_ms=int(runtime.clock.now() * 1000))
    except ValueError as exc:
        raise BadRequest(str(exc), code="invalid_parameter") from None
    entry = store.suppression(runtime.db.conn(), clean)
    assert entry is not None
    response = jsonify(entry.as_json())
    response.status_code = 201 if new else 200
    return response


@admin_blueprint.delete("/suppressions/<path:address>")
def suppression_delete(address: str) -> Response:
    """Take an address off the list."""
    if not suppression.remove(get_runtime().db.conn(), _address(address)):
        raise NotFound(f"{address} is not on the suppression list")
    return Response(status=204)
