"""`kanal products import|list|show|delete|feeds|fetch|build`, `kanal recommend USER` and
`kanal report recommendations`."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from .cli_common import _config, _database, _now_ms, _when, common_options
from .cli_report import _FORMAT, _SINCE, _UNTIL, _emit, _window, money, rate, report
from .config import Config
from .errors import KanalError
from .products import FeedError, Filters, ProductSettings, import_rows
from .products.feeds import count_products, read_feed
from .products.importer import delete_product
from .products.recommend import KINDS, recommend
from .products.report import recommendations_report
from .products.settings import FORMATS, currency_code
from .products.views import history_json, money_text, product_json
from .profiles.views import lookup
from .store import product_activity as activity
from .store import products as store
from .store.db import Database, transaction


@contextmanager
def _opened(db: str | None, config_path: str | None
            ) -> Iterator[tuple[Config, ProductSettings, Database]]:
    config = _config(config_path, db=db)
    try:
        settings = ProductSettings.from_config(config)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    database = _database(config)
    try:
        yield config, settings, database
    except (KanalError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        database.close()


def _with_products(func: Callable[..., Any]) -> Callable[..., Any]:
    """Pass (settings, database) for --db/--config, turning errors into exit messages."""

    @functools.wraps(func)
    def wrapper(db: str | None, config_path: str | None, **kwargs: Any) -> Any:
        with _opened(db, config_path) as (_, settings, database):
            return func(settings, database, **kwargs)

    return wrapper


@click.group()
def products() -> None:
    """The product catalogue: import feeds, list and show products, scheduled feeds."""


@products.command("import")
@common_options
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True,
              help="csv, jsonl or xml (Merchant Center RSS/Atom); auto: by name and content.")
@click.option("--source", default="import", show_default=True,
              help="Name the products' source (--delete-missing works per source).")
@click.option("--currency", help="Currency of prices that name none (default: [products] "
                                 "default_currency).")
@click.option("--delete-missing", is_flag=True,
              help="Delete this source's products the file doesn't list (a full feed).")
@click.option("--dry-run", is_flag=True, help="Check only; store nothing.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, writable=True),
              help="Write every rejected row here (JSON lines: line, reason).")
@click.option("--allow-rejects", is_flag=True,
              help="Exit 0 even when rows were rejected (the valid rows are stored either "
                   "way).")
@_with_products
def products_import(settings: ProductSettings, db: Database, file: str, fmt: str, source: str,
                    currency: str | None, delete_missing: bool, dry_run: bool,
                    report_path: str | None, allow_rejects: bool) -> None:
    """Import products from FILE: CSV, JSON lines or a Merchant Center XML feed.

    Idempotent: an unchanged product is not written again. Rejected rows are listed with
    their line and reason; the exit status is then 1 (the valid rows are stored all the
    same), unless --allow-rejects. Safe while `kanal serve` runs.
    """
    path = Path(file)
    default = currency_code(currency, "--currency") if currency else settings.default_currency
    conn = db.conn()
    try:
        with click.progressbar(length=count_products(path, fmt), file=sys.stderr,
                               label=f"Importing {path.name}") as bar:
            report_ = import_rows(conn, read_feed(path, fmt), source=source, now=_now_ms(),
                                  default_currency=default, dry_run=dry_run,
                                  delete_missing=delete_missing, progress=bar.update)
    except FeedError as exc:
        raise click.ClickException(f"{path}: {exc}") from None
    verb = "Checked" if dry_run else "Imported"
    deleted = f", {report_.deleted} deleted" if delete_missing else ""
    click.echo(f"{verb} {report_.rows} rows: {report_.created} new, {report_.updated} "
               f"changed, {report_.unchanged} unchanged{deleted}, "
               f"{len(report_.rejected)} rejected.")
    if report_.note:
        click.echo(f"  {report_.note}")
    for rejected in report_.rejected[:20]:
        click.echo(f"  {path.name}:{rejected.line}: {rejected.reason}")
    if len(report_.rejected) > 20:
        click.echo(f"  … and {len(report_.rejected) - 20} more (--report FILE lists all)")
    if report_path:
        with open(report_path, "w", encoding="utf-8") as f:
            for rejected in report_.rejected:
                f.write(json.dumps({"line": rejected.line, "reason": rejected.reason}) + "\n")
    if report_.rejected and not allow_rejects:
        raise click.ClickException(
            f"{len(report_.rejected)} row(s) rejected"
            + ("" if dry_run else "; the other rows were stored")
            + "; --allow-rejects exits 0 when rejects are expected")


@products.command("list")
@common_options
@click.option("--q", "prefix", help="Only ids or names starting with this.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@click.option("--deleted", is_flag=True, help="Also deleted products.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@_with_products
def products_list(settings: ProductSettings, db: Database, prefix: str | None, limit: int,
                  deleted: bool, as_json: bool) -> None:
    """Products by id: price, availability, category, name."""
    conn = db.conn()
    rows = store.list_products(conn, prefix=prefix, limit=limit, include_deleted=deleted)
    if not as_json:
        live, available = store.count_products(conn)
        click.echo(f"{live} products ({available} available)")
    for row in rows:
        if as_json:
            click.echo(json.dumps(product_json(row), ensure_ascii=False))
            continue
        state = "deleted" if row["deleted_at"] else row["availability"]
        click.echo(f"{row['id']}\t{money_text(row['price'], row['currency']) or '-'}\t"
                   f"{state}\t{row['category'] or '-'}\t{row['name']}")


@products.command("show")
@common_options
@click.argument("product_id")
@click.option("--json", "as_json", is_flag=True, help="As the admin API answers.")
@_with_products
def products_show(settings: ProductSettings, db: Database, product_id: str,
                  as_json: bool) -> None:
    """One product: prices per currency, availability, and its price and stock history."""
    conn = db.conn()
    row = store.load_products(conn, [product_id]).get(product_id)
    if row is None:
        raise click.ClickException(f"no product {product_id!r}")
    history = store.product_history(conn, product_id)
    doc = {**product_json(row), "history": [history_json(h) for h in history]}
    if as_json:
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    click.echo(f"{row['id']}  {row['name']}" + ("  (deleted)" if row["deleted_at"] else ""))
    for label, key in (("sku", "sku"), ("url", "url"), ("image", "image_url"),
                       ("brand", "brand"), ("group", "parent_id")):
        if row.get(key):
            click.echo(f"  {label}: {row[key]}")
    click.echo(f"  availability: {row['availability']}"
               + (f" (stock {row['stock']})" if row["stock"] is not None else ""))
    for code, (price, sale) in sorted(row["prices"].items()):
        default = " (default)" if code == row["currency"] else ""
        on_sale = f", sale {money_text(sale, code)}" if sale is not None else ""
        click.echo(f"  price: {money_text(price, code)}{on_sale}{default}")
    if row["categories"]:
        click.echo(f"  categories: {'; '.join(row['categories'])}")
    for name, value in row["attributes"].items():
        click.echo(f"  {name}: {json.dumps(value, ensure_ascii=False)}")
    click.echo(f"  source {row['source']}, updated {_when(row['updated_at'])}")
    click.echo("History (newest first):")
    for h in history:
        if h.what == "price":
            change = f"{money_text(h.old_price, h.currency or '')} → " \
                     f"{money_text(h.new_price, h.currency or '')}"
        elif h.what == "created":
            change = f"{money_text(h.new_price, h.currency or '')}, {h.new_availability}"
        else:
            change = f"{h.old_availability} → {h.new_availability}"
        click.echo(f"  {_when(h.at)}  {h.what}: {change}  ({h.source})")


@products.command("delete")
@common_options
@click.argument("product_id")
@_with_products
def products_delete(settings: ProductSettings, db: Database, product_id: str) -> None:
    """Delete a product (messages naming it skip it; its history is kept)."""
    conn = db.conn()
    with transaction(conn):
        done = delete_product(conn, product_id, source="cli", now=_now_ms())
    if not done:
        raise click.ClickException(f"no product {product_id!r} to delete")
    click.echo(f"Deleted product {product_id}.")


@products.command("feeds")
@common_options
@_with_products
def products_feeds(settings: ProductSettings, db: Database) -> None:
    """The scheduled feeds of [[products.feeds]] and how their last fetch went."""
    if not settings.feeds:
        click.echo("No feeds configured ([[products.feeds]] in kanal.toml).")
    conn = db.conn()
    for feed in settings.feeds:
        state = store.feed_state(conn, feed.name) or {}
        click.echo(f"{feed.name}\t{feed.url}\tevery {feed.every_ms // 60_000}m\t"
                   f"{state.get('status') or 'never fetched'}\t"
                   f"last {_when(state.get('last_attempt_at'))}\t"
                   f"next {_when(state.get('next_at'))}")
        if state.get("detail"):
            click.echo(f"  {state['detail']}")


@products.command("fetch")
@common_options
@click.argument("names", nargs=-1)
@_with_products
def products_fetch(settings: ProductSettings, db: Database, names: tuple[str, ...]) -> None:
    """Fetch and import configured feeds now (default: all of them)."""
    from .products.fetch import fetch_feed  # requests: only this command needs it

    chosen = [f for f in settings.feeds if not names or f.name in names]
    missing = set(names) - {f.name for f in settings.feeds}
    if missing:
        raise click.ClickException(f"no feed named {', '.join(sorted(missing))} in "
                                   "[[products.feeds]]")
    failed = 0
    for feed in chosen:
        try:
            report_ = fetch_feed(db.conn(), feed, settings, _now_ms())
        except FeedError as exc:
            failed += 1
            click.echo(f"{feed.name}: failed: {exc}", err=True)
            continue
        if report_ is None:
            click.echo(f"{feed.name}: unchanged (304)")
        else:
            click.echo(f"{feed.name}: {report_.rows} rows: {report_.created} new, "
                       f"{report_.updated} changed, {report_.unchanged} unchanged, "
                       f"{report_.deleted} deleted, {len(report_.rejected)} rejected")
            for rejected in report_.rejected[:20]:
                click.echo(f"  line {rejected.line}: {rejected.reason}")
    if failed:
        raise click.ClickException(f"{failed} of {len(chosen)} feed(s) failed")


@products.command("build")
@common_options
@_with_products
def products_build(settings: ProductSettings, db: Database) -> None:
    """Build the recommendation lists now (`kanal serve` does it on a schedule)."""
    from .products.build import build  # numpy and scipy: only this command needs them

    result = build(db.conn(), settings, _now_ms())
    click.echo(f"Built in {result.seconds:.2f} s: "
               + ", ".join(f"{kind} {n}" for kind, n in result.lists.items()))


@click.command("recommend")
@common_options
@click.argument("user")
@click.option("--kind", type=click.Choice(KINDS), default="personal", show_default=True)
@click.option("-n", "n", type=click.IntRange(1, 50), default=4, show_default=True)
@click.option("--product", "product_ids", multiple=True,
              help="Recommend for these products (default: the person's history).")
@click.option("--category", help="Only products in this category (or below it).")
@click.option("--min-price", type=float, help="In the person's currency.")
@click.option("--max-price", type=float, help="In the person's currency.")
@click.option("--json", "as_json", is_flag=True, help="As the admin API answers.")
@_with_products
def recommend_command(settings: ProductSettings, db: Database, user: str, kind: str, n: int,
                      product_ids: tuple[str, ...], category: str | None,
                      min_price: float | None, max_price: float | None,
                      as_json: bool) -> None:
    """What Kanal would recommend to USER (any identity), and which kind served it."""
    conn = db.conn()
    pid = lookup(conn, user)
    if pid is None:
        raise click.ClickException(f"no profile has the identity {user!r}")
    traits = _traits(conn, pid)
    answer = recommend(conn, settings, now_ms=_now_ms(), profile_id=pid, kind=kind, n=n,
                       products=product_ids,
                       filters=Filters(category, min_price, max_price),
                       currency=traits.get("currency"))
    if as_json:
        click.echo(json.dumps({"profileId": pid, **answer.as_json()}, indent=2,
                              ensure_ascii=False))
        return
    built = activity.recs_built_at(conn)
    click.echo(f"{kind} for profile {pid}: served by {answer.served} "
               f"(lists built {_when(built)})")
    for item in answer.items:
        click.echo(f"  {item['id']}\t{item['price_text'] or '-'}\t{item['kind']}\t"
                   f"{item['name']}")
    if not answer.items:
        click.echo("  nothing to recommend (no lists yet? `kanal products build`)")


def _traits(conn: Any, profile_id: int) -> dict[str, Any]:
    from .messages.eligibility import load_person

    person = load_person(conn, profile_id)
    return dict(person.traits) if person is not None else {}


@report.command("recommendations")
@common_options
@_SINCE
@_UNTIL
@_FORMAT
@_with_products
def report_recommendations(settings: ProductSettings, db: Database, since: str | None,
                           until: str | None, fmt: str) -> None:
    """What each recommendation kind earned: shown, clicks, purchases within the
    attribution window of a click (last click wins), revenue."""
    since_ms, until_ms = _window(since, until)
    doc = recommendations_report(db.conn(), since_ms=since_ms, until_ms=until_ms)
    headers = ["kind", "message", "shown", "clicks", "click_rate", "conversions",
               "conversion_rate", "revenue"]
    rows = [[r["kind"], r["message"] or "(all)", r["shown"], r["clicks"], rate(r["click_rate"]),
             r["conversions"], rate(r["conversion_rate"]), money(r["revenue"])]
            for r in doc["kinds"]]
    rows += [[r["kind"], r["message"] or "-", r["shown"], r["clicks"], rate(r["click_rate"]),
              r["conversions"], rate(r["conversion_rate"]), money(r["revenue"])]
             for r in doc["messages"]]
    _emit(fmt, doc, headers, rows)
