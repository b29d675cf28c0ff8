"""Product records, feed files (Merchant Center XML, CSV, JSON lines) and their import."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from kanal_testing import db_at
from products_util import Shop, product

from kanal_collector.cli import cli
from kanal_collector.products.errors import FeedError, InvalidProduct
from kanal_collector.products.feeds import count_products, read_feed
from kanal_collector.products.importer import import_rows
from kanal_collector.products.merchant import read_merchant
from kanal_collector.products.record import normalize, parse_money
from kanal_collector.store import products as store

DATA = Path(__file__).parent / "data" / "products"


@pytest.mark.parametrize(("value", "expected"), [
    ("15.00 USD", (15.0, "USD")),
    ("USD 15", (15.0, "USD")),
    ("12,50", (12.5, None)),
    ("1,299.00 EUR", (1299.0, "EUR")),
    ("1.299,00 EUR", (1299.0, "EUR")),
    (3, (3.0, None)),
    (0, (0.0, None)),
    ("9.99 gbp", (9.99, "GBP")),
])
def test_prices_are_read(value: Any, expected: tuple[float, str | None]) -> None:
    assert parse_money(value, "price") == expected


@pytest.mark.parametrize(("value", "why"), [
    ("NaN", "not a price"), ("nan EUR", "not a price"), ("inf", "not a price"),
    (float("nan"), "not a finite number"), (float("inf"), "not a finite number"),
    ("-3", "can't be negative"), (-0.5, "can't be negative"), ("1e5", "not a price"),
    ("15.00 US", "not a price"), (True, "not a price"), ("", "not a price"),
    ("15 EUR USD", "not a price"), (None, "not a price"),
])
def test_what_is_not_a_price(value: Any, why: str) -> None:
    with pytest.raises(InvalidProduct, match=why):
        parse_money(value, "price")


def test_a_record_takes_merchant_center_and_kanal_names() -> None:
    record = normalize({"g:id": "A", "g:title": "Mug", "link": "https://s.example/a",
                        "g:price": "9.99 GBP", "availability": "out of stock",
                        "product_type": ["Home > Kitchen", "Gifts"], "item_group_id": "G",
                        "color": "red", "price_sek": "120", "sale_price_sek": "99"},
                       default_currency=None)
    assert record["id"] == "A" and record["name"] == "Mug"
    assert record["currency"] == "GBP" and record["price"] == 9.99
    assert record["prices"] == {"GBP": (9.99, None), "SEK": (120.0, 99.0)}
    assert record["availability"] == "out_of_stock" and record["in_stock"] is False
    assert record["categories"] == ["Home > Kitchen", "Gifts"]
    assert record["category"] == "Home > Kitchen" and record["parent_id"] == "G"
    assert record["attributes"] == {"color": "red"}


@pytest.mark.parametrize(("raw", "why"), [
    ({"title": "x", "price": 1}, "id: required"),
    ({"id": "a", "price": 1}, "name"),
    ({"id": "a", "name": "x", "price": 1}, "set \\[products\\] default_currency"),
    ({"id": "a", "name": "x", "price": "1 EUR", "currency": "SEK"}, "in EUR but currency"),
    ({"id": "a", "name": "x", "price": "5 EUR", "sale_price": "6 EUR"}, "above the price"),
    ({"id": "a", "name": "x", "price": "5 EUR", "url": "ftp://x"}, "http"),
    ({"id": "a", "name": "x", "price": "5 EUR", "stock": 1.5}, "whole number"),
    ({"id": "a", "name": "x", "prices": {"EURO": 1}}, "three-letter"),
    ({"id": "a", "name": "x", "price": "5 EUR", "availability": "soon"}, "availability"),
])
def test_bad_records_say_why(raw: dict[str, Any], why: str) -> None:
    with pytest.raises(InvalidProduct, match=why):
        normalize(raw, default_currency=None)


def test_stock_zero_without_availability_is_out_of_stock() -> None:
    record = normalize({"id": "a", "name": "x", "price": 1, "stock": "0"},
                       default_currency="EUR")
    assert record["availability"] == "out_of_stock"
    assert normalize({"id": "a", "name": "x", "price": 1}, default_currency="EUR")["in_stock"]


def test_the_merchant_rss_sample_is_read_with_lines() -> None:
    with (DATA / "merchant_rss.xml").open("rb") as f:
        rows = list(read_merchant(f))
    assert [line for line, _ in rows] == [8, 30, 42, 53, 60]
    first = rows[0][1]
    assert first["g:id"] == "MUG-BLUE"
    assert first["title"] == "Blue mug"
    assert first["g:price"] == "12.00 EUR"  # not the shipping price nested below
    assert first["g:shipping"] == {"country": "SE", "service": "Standard", "price": "4.95 EUR"}
    assert first["g:product_type"] == "Home & Garden > Kitchen > Mugs"
    record = normalize(first, default_currency=None)
    assert record["price"] == 12.0 and record["sale_price"] == 9.5
    assert record["attributes"]["additional_image_link"] == \
        "https://shop.example/img/mug-blue-2.jpg"
    assert record["attributes"]["google_product_category"] == "2169"


def test_the_merchant_atom_sample_is_read() -> None:
    rows = list(read_feed(DATA / "merchant_atom.xml"))
    assert len(rows) == 1
    line, row = rows[0]
    assert line == 7
    assert isinstance(row, dict)
    record = normalize(row, default_currency=None)
    assert (record["id"], record["url"], record["currency"]) == (
        "BOWL", "https://shop.example/p/bowl", "GBP")
    assert record["category"] == "Animals & Pet Supplies > Pet Supplies > Dog Supplies"


@pytest.mark.parametrize("xml", [
    b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;">]>'
    b'<rss><channel><item><title>&b;</title></item></channel></rss>',
    b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b'<rss><channel><item><title>&x;</title></item></channel></rss>',
    b'<?xml version="1.0"?><!DOCTYPE rss SYSTEM "http://169.254.169.254/x.dtd">'
    b'<rss><channel/></rss>',
])
def test_entities_and_dtds_are_refused(xml: bytes) -> None:
    with pytest.raises(FeedError, match="refused"):
        list(read_merchant(io.BytesIO(xml)))


def test_broken_xml_names_its_line() -> None:
    with pytest.raises(FeedError, match="line 3: not well-formed"):
        list(read_merchant(io.BytesIO(b"<rss>\n<channel>\n<item></channel></rss>")))
    with pytest.raises(FeedError, match="is not an RSS"):
        list(read_merchant(io.BytesIO(b"<html><body/></html>")))


def test_a_csv_with_bad_rows_reports_each_with_its_line(tmp_path: Path) -> None:
    shop = Shop(tmp_path)
    try:
        report = import_rows(shop.conn, read_feed(DATA / "cups_bad_rows.csv"), source="csv",
                             now=shop.now_ms(), default_currency=None)
        assert (report.rows, report.created) == (10, 3)
        assert [(r.line, r.reason) for r in report.rejected] == [
            (4, "price: a price can't be negative ('-2.00')"),
            (5, "id: required"),
            (7, "sale_price: 4 EUR is above the price 3 EUR"),
            (8, "id 'CUP-1' is already on line 2"),
            (9, "url: an http:// or https:// URL, not 'javascript:alert(1)'"),
            (10, "availability: one of in_stock, out_of_stock, preorder, backorder, "
                 "not 'maybe'"),
            (11, "price: 'inf' is not a price like 15.00 or 15.00 USD"),
        ]
        rows = store.load_products(shop.conn, ["CUP-1", "CUP-2", "CUP-4"])
        assert rows["CUP-1"]["prices"] == {"EUR": (4.5, None), "SEK": (49.0, None)}
        assert rows["CUP-1"]["stock"] == 12
        assert rows["CUP-2"]["availability"] == "out_of_stock"  # stock 0
        assert (rows["CUP-2"]["price"], rows["CUP-2"]["sale_price"]) == (6.0, 5.0)
        assert rows["CUP-4"]["name"] == 'Cup, "tea" size' and rows["CUP-4"]["price"] == 3.75
        assert rows["CUP-4"]["availability"] == "backorder" and rows["CUP-4"]["in_stock"]
    finally:
        shop.close()


def test_importing_twice_writes_nothing_new(tmp_path: Path) -> None:
    shop = Shop(tmp_path)
    try:
        first = import_rows(shop.conn, read_feed(DATA / "merchant_rss.xml"), source="f",
                            now=shop.now_ms(), default_currency=None)
        assert (first.created, len(first.rejected)) == (3, 2)
        assert [(r.line, r.reason.split(":")[0]) for r in first.rejected] == [
            (53, "price"), (60, "id")]
        history = shop.conn.execute("SELECT count(*) FROM product_history").fetchone()[0]
        shop.clock.advance(60)
        again = import_rows(shop.conn, read_feed(DATA / "merchant_rss.xml"), source="f",
                            now=shop.now_ms(), default_currency=None)
        assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
        assert shop.conn.execute("SELECT count(*) FROM product_history").fetchone()[0] == \
            history
        row = store.load_products(shop.conn, ["MUG-BLUE"])["MUG-BLUE"]
        assert row["updated_at"] == row["created_at"]  # not written again
    finally:
        shop.close()


def test_changes_are_history_and_full_feeds_delete_what_they_dropped(tmp_path: Path) -> None:
    shop = Shop(tmp_path)
    try:
        shop.products(product("a", price="10 EUR"), product("b"), product("c"), source="feed")
        shop.clock.advance(60)
        report = import_rows(
            shop.conn, list(enumerate([product("a", price="8 EUR", availability="out of stock"),
                                       product("b"), {"id": "c", "title": "C"}], start=1)),
            source="feed", now=shop.now_ms(), default_currency="EUR", delete_missing=True)
        assert (report.updated, report.deleted, report.rejected) == (2, 0, [])
        assert store.load_products(shop.conn, ["c"])["c"]["price"] is None  # price optional
        whats = [(h.what, h.old_price, h.new_price, h.old_availability, h.new_availability)
                 for h in reversed(store.product_history(shop.conn, "a"))]
        assert whats == [("created", None, 10.0, None, "in_stock"),
                         ("availability", None, None, "in_stock", "out_of_stock"),
                         ("price", 10.0, 8.0, None, None)]
        shop.clock.advance(60)
        report = import_rows(shop.conn, [(1, product("a"))], source="feed", now=shop.now_ms(),
                             default_currency="EUR", delete_missing=True)
        assert report.deleted == 2
        assert store.live_ids_of_source(shop.conn, "feed") == {"a"}
        assert store.product_history(shop.conn, "b")[0].what == "deleted"
        shop.clock.advance(60)
        import_rows(shop.conn, [(1, product("b"))], source="feed", now=shop.now_ms(),
                    default_currency="EUR")
        assert store.product_history(shop.conn, "b")[0].what == "restored"
    finally:
        shop.close()


def test_a_rejected_row_protects_its_product_from_deletion(tmp_path: Path) -> None:
    shop = Shop(tmp_path)
    try:
        shop.products(product("a"), product("b"), source="feed")
        report = import_rows(shop.conn, [(1, product("a")), (2, product("b", price="NaN"))],
                             source="feed", now=shop.now_ms(), default_currency="EUR",
                             delete_missing=True)
        assert report.deleted == 0 and len(report.rejected) == 1
        assert store.live_ids_of_source(shop.conn, "feed") == {"a", "b"}
    finally:
        shop.close()


def test_count_products_for_the_progress_bar() -> None:
    assert count_products(DATA / "merchant_rss.xml") == 5
    assert count_products(DATA / "cups_bad_rows.csv") == 10


def _run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_cli_import_list_show_and_delete(tmp_path: Path) -> None:
    db = db_at(tmp_path / "kanal.db")
    config = tmp_path / "kanal.toml"
    config.write_text('[products]\ndefault_currency = "EUR"\n')
    result = _run("products", "import", str(DATA / "cups_bad_rows.csv"), "--db", db,
                  "--config", str(config), "--report", str(tmp_path / "rejected.jsonl"),
                  "--create-db")
    assert result.exit_code == 1, result.output  # rows were rejected
    assert "7 row(s) rejected; the other rows were stored" in result.output
    assert "Imported 10 rows: 3 new, 0 changed, 0 unchanged, 7 rejected." in result.output
    assert "cups_bad_rows.csv:4: price: a price can't be negative ('-2.00')" in result.output
    lines = [json.loads(x) for x in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    assert [x["line"] for x in lines] == [4, 5, 7, 8, 9, 10, 11]
    again = _run("products", "import", str(DATA / "cups_bad_rows.csv"), "--db", db,
                 "--config", str(config), "--allow-rejects")
    assert again.exit_code == 0, again.output
    assert "0 new, 0 changed, 3 unchanged" in again.output
    listed = _run("products", "list", "--db", db, "--config", str(config))
    assert "3 products (3 available)" not in listed.output  # CUP-2 is out of stock
    assert "3 products (2 available)" in listed.output
    assert "CUP-1\t4.50 EUR\tin_stock\tHome > Kitchen > Cups\tEspresso cup" in listed.output
    shown = _run("products", "show", "CUP-1", "--db", db, "--config", str(config))
    assert "price: 49.00 SEK" in shown.output and "price: 4.50 EUR (default)" in shown.output
    assert "created: 4.50 EUR, in_stock" in shown.output
    as_json = json.loads(_run("products", "show", "CUP-2", "--json", "--db", db,
                              "--config", str(config)).output)
    assert as_json["salePrice"] == 5.0 and as_json["history"][0]["what"] == "created"
    gone = _run("products", "delete", "CUP-1", "--db", db, "--config", str(config))
    assert gone.exit_code == 0 and "Deleted product CUP-1." in gone.output
    missing = _run("products", "delete", "CUP-1", "--db", db, "--config", str(config))
    assert missing.exit_code == 1 and "no product 'CUP-1' to delete" in missing.output
    nothing = _run("products", "show", "NOPE", "--db", db, "--config", str(config))
    assert nothing.exit_code == 1 and "Traceback" not in nothing.output


def test_cli_import_refuses_a_broken_feed_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "feed.xml"
    bad.write_text('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "x">]><rss/>')
    result = _run("products", "import", str(bad), "--db", db_at(tmp_path / "k.db"),
                  "--create-db")
    assert result.exit_code == 1
    assert "refused: the feed declares a DTD or entities" in result.output
    assert "Traceback" not in result.output
    config = tmp_path / "bad.toml"
    config.write_text('[products]\ndefault_currency = "euro"\n')
    result = _run("products", "list", "--db", db_at(tmp_path / "k.db"),
                  "--config", str(config))
    assert result.exit_code == 1
    assert "default_currency: a three-letter currency code like EUR, not 'euro'" in \
        result.output
