"""The admin API of products and recommendations, `kanal recommend` and the report."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from kanal_testing import App, make_app

from kanal_collector.app import build_processor, close_app
from kanal_collector.cli import cli
from kanal_collector.products import ProductSettings
from kanal_collector.products.build import build


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    env = make_app(tmp_path / "kanal.db", sections={"products": {"default_currency": "EUR"}})
    try:
        yield env
    finally:
        close_app(env.app)


def _auth(app: App) -> dict[str, str]:
    return {"Authorization": f"Bearer {app.keys['admin']}"}


def _track(app: App, body: dict[str, Any], key: str = "secret") -> None:
    response = app.client.post("/v1/track", json=body,
                               headers={"Authorization": _basic(app.keys[key])})
    assert response.status_code == 200, response.get_json()


def _basic(key: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def _process(app: App) -> None:
    runtime = app.app.extensions["kanal"]
    processor = build_processor(runtime.db, products=ProductSettings(default_currency="EUR"))
    try:
        processor.catch_up()
    finally:
        processor.close()


def test_products_are_written_only_with_an_admin_key(app: App) -> None:
    put = app.client.put("/api/products/mug", json={"title": "Mug", "price": "12.00 EUR",
                                                    "link": "https://shop.example/mug"})
    assert put.status_code == 401
    put = app.client.put("/api/products/mug", headers={"Authorization":
                                                       f"Bearer {app.keys['secret']}"},
                         json={"title": "Mug", "price": 12})
    assert put.status_code == 401
    put = app.client.put("/api/products/mug", headers=_auth(app),
                         json={"title": "Mug", "price": 12, "image_link":
                               "https://shop.example/mug.jpg", "availability": "in stock"})
    assert put.status_code == 200
    body = put.get_json()
    assert body["outcome"] == "created"
    assert (body["product"]["price"], body["product"]["currency"]) == (12.0, "EUR")
    again = app.client.put("/api/products/mug", headers=_auth(app),
                           json={"title": "Mug", "price": 12, "image_link":
                                 "https://shop.example/mug.jpg"})
    assert again.get_json()["outcome"] == "unchanged"
    bad = app.client.put("/api/products/mug", headers=_auth(app),
                         json={"title": "Mug", "price": "NaN"})
    assert bad.status_code == 400 and bad.get_json()["code"] == "invalid_product"
    assert "not a price" in bad.get_json()["message"]
    other = app.client.put("/api/products/mug", headers=_auth(app),
                           json={"id": "cup", "title": "Cup"})
    assert other.status_code == 400 and "the path 'mug'" in other.get_json()["message"]


def test_events_from_browsers_never_create_or_change_a_product(app: App) -> None:
    _track(app, {"anonymousId": "v1", "event": "Product Viewed",
                 "properties": {"product_id": "evil", "name": "Free TV", "price": 0}},
           key="public")
    _track(app, {"userId": "u1", "event": "Product Added",
                 "properties": {"product_id": "evil", "price": 0, "url": "https://evil"}})
    _process(app)
    assert app.rows("SELECT count(*) FROM products") == [(0,)]
    listed = app.client.get("/api/products", headers=_auth(app)).get_json()
    assert listed["products"] == [] and listed["total"] == 0


def test_batch_list_show_history_and_delete(app: App) -> None:
    posted = app.client.post("/api/products", headers=_auth(app), json={"products": [
        {"id": "a", "title": "A", "price": 5}, {"id": "b", "title": "B", "price": "x"},
        "nope", {"id": "c", "title": "C", "price": 7, "product_type": "Garden"}]})
    report = posted.get_json()
    assert (report["created"], report["rows"]) == (2, 4)
    assert [(r["line"], r["reason"][:6]) for r in report["rejected"]] == [
        (2, "price:"), (3, "a prod")]
    app.client.put("/api/products/a", headers=_auth(app), json={"title": "A", "price": 4})
    history = app.client.get("/api/products/a/history", headers=_auth(app)).get_json()
    assert [h["what"] for h in history["history"]] == ["price", "created"]
    assert history["history"][0]["oldPrice"] == 5.0 and history["history"][0]["newPrice"] == 4
    shown = app.client.get("/api/products/c", headers=_auth(app)).get_json()
    assert shown["categories"] == ["Garden"]
    listed = app.client.get("/api/products?q=a", headers=_auth(app)).get_json()
    assert [p["id"] for p in listed["products"]] == ["a"]
    gone = app.client.delete("/api/products/a", headers=_auth(app))
    assert gone.status_code == 200
    assert app.client.delete("/api/products/a", headers=_auth(app)).status_code == 404
    shown = app.client.get("/api/products/a", headers=_auth(app)).get_json()
    assert shown["deletedAt"] is not None
    assert app.client.get("/api/products/zzz", headers=_auth(app)).status_code == 404
    assert app.client.post("/api/products", headers=_auth(app), data="[",
                           content_type="application/json").status_code == 400


def test_recommendations_route_and_cli(app: App, tmp_path: Path) -> None:
    app.client.post("/api/products", headers=_auth(app), json=[
        {"id": f"p{i}", "title": f"P{i}", "price": 10 + i,
         "link": f"https://shop.example/p{i}", "image_link": f"https://shop.example/p{i}.jpg"}
        for i in range(6)])
    for user in ("u1", "u2", "u3", "u4"):
        _track(app, {"userId": user, "event": "Order Completed", "properties": {
            "order_id": f"o-{user}", "products": [{"product_id": "p1", "price": 11},
                                                  {"product_id": "p2", "price": 12}]}})
    _track(app, {"userId": "ann", "event": "Order Completed", "properties": {
        "order_id": "o-ann", "products": [{"product_id": "p1", "price": 11}]}})
    identify = app.client.post("/v1/identify", json={
        "userId": "new", "traits": {"email": "new@example.com"}},
        headers={"Authorization": _basic(app.keys["secret"])})
    assert identify.status_code == 200
    _process(app)
    runtime = app.app.extensions["kanal"]
    build(runtime.db.conn(), ProductSettings(), int(app.clock.now() * 1000))
    answer = app.client.get("/api/recommendations/ann?kind=bought_together&n=3",
                            headers=_auth(app)).get_json()
    assert answer["requested"] == answer["served"] == "bought_together"
    assert [i["id"] for i in answer["items"]][0] == "p2"
    cold = app.client.get("/api/recommendations/new@example.com?kind=personal",
                          headers=_auth(app)).get_json()
    assert (cold["requested"], cold["served"]) == ("personal", "popular")
    for bad in ("kind=best", "n=0", "min_price=cheap"):
        response = app.client.get(f"/api/recommendations/ann?{bad}", headers=_auth(app))
        assert response.status_code == 400, bad
    assert app.client.get("/api/recommendations/nobody",
                          headers=_auth(app)).status_code == 404
    runner = CliRunner()
    result = runner.invoke(cli, ["recommend", "ann", "--kind", "bought_together",
                                 "--db", app.db])
    assert result.exit_code == 0, result.output
    assert "bought_together for profile" in result.output and "served by bought_together" \
        in result.output
    assert "\tp2\t" in result.output.replace("  p2", "\tp2")
    result = runner.invoke(cli, ["recommend", "new@example.com", "--json",
                                 "--db", app.db])
    assert json.loads(result.output)["served"] == "popular"
    missing = runner.invoke(cli, ["recommend", "nobody", "--db", app.db])
    assert missing.exit_code == 1 and "no profile has the identity 'nobody'" in missing.output


def test_the_recommendations_report_route_and_cli(app: App) -> None:
    response = app.client.get("/api/reports/recommendations?since=7d", headers=_auth(app))
    assert response.status_code == 200
    doc = response.get_json()
    assert doc["kinds"] == [] and doc["totals"]["conversions"] == 0
    bad = app.client.get("/api/reports/recommendations?since=soon", headers=_auth(app))
    assert bad.status_code == 400 and bad.get_json()["code"] == "invalid_parameter"
    result = CliRunner().invoke(cli, ["report", "recommendations", "--format", "json",
                                      "--db", app.db])
    assert result.exit_code == 0 and json.loads(result.output)["totals"]["shown"] == 0


def test_the_dashboard_page_shows_what_each_kind_earned(app: App) -> None:
    from test_dashboard import page_data, sign_in

    now = int(app.clock.now() * 1000)
    runtime = app.app.extensions["kanal"]
    conn = runtime.db.conn()
    from kanal_collector.store import product_activity as activity
    from kanal_collector.store.db import transaction

    link = activity.RecLink(7, "https://shop.example/p1", "p1", "bought_together",
                            "cross_sell", "post_purchase", now - 3_600_000)
    with transaction(conn):
        activity.add_rec_links(conn, [link])
        activity.add_rec_click(conn, profile_id=1, link=link, event_id=99, at=now - 60_000)
        activity.add_rec_conversion(
            conn, activity.OrderLine("o:1", "p1", 1, now - 1000, 2.0, 6.0, "EUR"),
            kind="bought_together", message="cross_sell", journey="post_purchase",
            outbox_id=7, clicked_at=now - 60_000, revenue=12.0)
    sign_in(app)
    html = app.client.get("/dashboard/recommendations?since=7d").get_data(as_text=True)
    assert '<tr data-kind="bought_together"><td>bought_together</td><td class="n">1</td>' \
        in html
    assert "12.00" in html and "cross_sell" in html
    assert page_data(html)["totals"]["conversions"] == 1
