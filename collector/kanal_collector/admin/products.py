"""Admin routes of products: the catalogue (read, upsert, delete), recommendations and
what they earn. The admin API is one of the three writers of products (with feeds and
`kanal products import`); its products have the source `api`."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request

from ..errors import BadRequest, NotFound
from ..messages.eligibility import load_person
from ..products import Filters, InvalidProduct, ProductSettings, import_rows
from ..products.importer import delete_product, write_record
from ..products.recommend import recommend
from ..products.record import normalize
from ..products.report import recommendations_report
from ..products.views import history_json, product_json
from ..profiles.views import lookup
from ..runtime import get_runtime
from ..store import products as store
from ..store.db import transaction
from .reports import _window
from .routes import _int_arg, admin_blueprint

SOURCE = "api"
MAX_BATCH = 5000


def _settings() -> ProductSettings:
    return ProductSettings.from_config(get_runtime().config)


def _now_ms() -> int:
    return int(get_runtime().clock.now() * 1000)


def _body() -> Any:
    data = request.get_json(silent=True)
    if data is None:
        raise BadRequest("the body must be JSON", code="invalid_json")
    return data


@admin_blueprint.get("/products")
def products_list() -> Response:
    """Products in id order; `q` (id or name prefix), `after` (an id), `limit`,
    `deleted=1` to include deleted ones."""
    conn = get_runtime().db.conn()
    limit = _int_arg("limit", 50, low=1, high=1000) or 50
    rows = store.list_products(conn, prefix=(request.args.get("q") or "").strip() or None,
                               after=request.args.get("after") or "", limit=limit,
                               include_deleted=request.args.get("deleted") in ("1", "true"))
    live, available = store.count_products(conn)
    return jsonify(products=[product_json(r) for r in rows], total=live, available=available)


@admin_blueprint.get("/products/<path:product_id>/history")
def product_history(product_id: str) -> Response:
    """A product's price and availability changes, newest first."""
    conn = get_runtime().db.conn()
    if not store.known_ids(conn, [product_id]):
        raise NotFound(f"no product {product_id!r}")
    limit = _int_arg("limit", 50, low=1, high=1000) or 50
    return jsonify(history=[history_json(h) for h in
                            store.product_history(conn, product_id, limit)])


@admin_blueprint.get("/products/<path:product_id>")
def product_show(product_id: str) -> Response:
    """One product (also a deleted one, with `deletedAt`)."""
    row = store.load_products(get_runtime().db.conn(), [product_id]).get(product_id)
    if row is None:
        raise NotFound(f"no product {product_id!r}")
    return jsonify(product_json(row))


@admin_blueprint.put("/products/<path:product_id>")
def product_put(product_id: str) -> Response:
    """Create or replace one product; the body is the product (its `id`, if given, must
    be the one in the path)."""
    data = _body()
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object: the product")
    named = data.get("id", data.get("product_id"))
    if named is not None and str(named) != product_id:
        raise BadRequest(f"id: the body says {named!r}, the path {product_id!r}")
    try:
        record = normalize({**data, "id": product_id},
                           default_currency=_settings().default_currency)
    except (InvalidProduct, ValueError) as exc:
        raise BadRequest(str(exc), code="invalid_product") from None
    conn = get_runtime().db.conn()
    with transaction(conn):
        stored = store.load_products(conn, [product_id]).get(product_id)
        outcome = write_record(conn, record, stored, source=SOURCE, now=_now_ms())
    row = store.load_products(conn, [product_id])[product_id]
    return jsonify(outcome=outcome, product=product_json(row))


@admin_blueprint.post("/products")
def products_post() -> Response:
    """Create or replace many products: `{"products": [...]}` (or a JSON list). Answers
    like `kanal products import`: counts, and rejected items by position (1-based)."""
    data = _body()
    items = data.get("products") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise BadRequest('the body must be {"products": [...]} or a JSON list')
    if len(items) > MAX_BATCH:
        raise BadRequest(f"at most {MAX_BATCH} products a request")
    rows = [(i, item if isinstance(item, dict) else "a product must be a JSON object")
            for i, item in enumerate(items, start=1)]
    report = import_rows(get_runtime().db.conn(), rows, source=SOURCE, now=_now_ms(),
                         default_currency=_settings().default_currency)
    return jsonify(report.as_json())


@admin_blueprint.delete("/products/<path:product_id>")
def product_delete(product_id: str) -> Response:
    """Delete a product (kept as a tombstone: messages naming it skip it)."""
    conn = get_runtime().db.conn()
    with transaction(conn):
        done = delete_product(conn, product_id, source=SOURCE, now=_now_ms())
    if not done:
        raise NotFound(f"no product {product_id!r} to delete")
    return jsonify(deleted=product_id)


def _float_arg(name: str) -> float | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest(f"{name}: a number", code="invalid_parameter") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise BadRequest(f"{name}: a finite number", code="invalid_parameter")
    return value


@admin_blueprint.get("/recommendations/<path:user>")
def recommendations(user: str) -> Response:
    """Recommendations for a person (any identity): `kind` (default personal), `n`
    (default 4), `product` (repeatable), `category`, `min_price`, `max_price`."""
    conn = get_runtime().db.conn()
    pid = lookup(conn, user)
    person = None if pid is None else load_person(conn, pid)
    if person is None:
        raise NotFound(f"no profile has the identity {user!r}")
    n = _int_arg("n", 4, low=1, high=50) or 4
    filters = Filters(request.args.get("category") or None, _float_arg("min_price"),
                      _float_arg("max_price"))
    currency = person.traits.get("currency")
    try:
        answer = recommend(conn, _settings(), now_ms=_now_ms(), profile_id=pid,
                           kind=request.args.get("kind") or "personal", n=n,
                           products=request.args.getlist("product"), filters=filters,
                           currency=currency if isinstance(currency, str) else None)
    except ValueError as exc:
        raise BadRequest(str(exc), code="invalid_parameter") from None
    return jsonify(profileId=pid, **answer.as_json())


@admin_blueprint.get("/reports/recommendations")
def report_recommendations() -> Response:
    """What each recommendation kind earned in the window (shown, clicks, purchases
    within the attribution window of a click, revenue)."""
    since_ms, until_ms = _window()
    return jsonify(recommendations_report(get_runtime().db.conn(), since_ms=since_ms,
                                          until_ms=until_ms))
